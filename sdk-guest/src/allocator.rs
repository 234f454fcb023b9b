//! The Element's memory allocator: free lists of small blocks in front of
//! the standard one.
//!
//! An Element allocates a dozen times per request (the request's strings,
//! the response, its headers, the JSON), almost all of it small and freed
//! before the request ends. The allocator Rust's `wasm32-wasip2` standard
//! library uses (wasi-libc's dlmalloc) spent about 370 instructions on each
//! `malloc`/`free` pair there, a fifth of a `GET /hello`'s guest
//! instructions; Talc, tried in its place, about 330. Here a small block is
//! popped from and pushed onto a free list of its size class, a few dozen
//! instructions, and anything larger than [`LARGEST`] bytes goes to the
//! standard allocator as before.
//!
//! Memory of a size class is never handed back to other classes: the small
//! blocks an Element holds are bounded by the most it held at once, and
//! the Element's memory limit bounds that. An Element is single-threaded, so
//! there is no locking.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// Size classes: 16, 32, ... [`LARGEST`] bytes.
const CLASSES: usize = 8;
/// The smallest class's size is `1 << MIN_SHIFT`: room for the free list's
/// link and a typical small string.
const MIN_SHIFT: u32 = 4;
/// The largest block served from a free list.
const LARGEST: usize = 1 << (MIN_SHIFT as usize + CLASSES - 1);
/// New blocks are carved from chunks of this size, taken from the standard
/// allocator. A fresh instance's first requests fit in the first one, so
/// they touch as few pages as dlmalloc's would (each page an instance
/// dirties is a page fault and a page to reset when it is done).
const CHUNK: usize = 16 << 10;
/// Chunks are asked for with the alignment `malloc` gives anyway (a larger
/// one goes through `posix_memalign`, slower); their start is then rounded
/// up to the smallest class's.
const CHUNK_ALIGN: usize = 8;

/// Free lists in front of [`System`]. Use it as the `#[global_allocator]`
/// of a single-threaded program only (every Element is one).
pub struct SmallBlocks {
    state: UnsafeCell<State>,
}

struct State {
    /// The first free block of each class; each free block's first word
    /// points to the next.
    free: [*mut u8; CLASSES],
    /// The part of the current chunk not yet handed out.
    next: *mut u8,
    end: *mut u8,
}

// SAFETY: only sound on a single thread, which is why it is only the global
// allocator of single-threaded WebAssembly (see lib.rs); tests use their own
// instance on one thread.
unsafe impl Sync for SmallBlocks {}

impl SmallBlocks {
    /// An allocator with nothing in it yet.
    pub const fn new() -> SmallBlocks {
        SmallBlocks {
            state: UnsafeCell::new(State {
                free: [ptr::null_mut(); CLASSES],
                next: ptr::null_mut(),
                end: ptr::null_mut(),
            }),
        }
    }
}

/// The class of blocks that fits `layout`, if one does. A block of a class
/// is aligned to its size, so a layout is served by the class as large as
/// its size and its alignment.
#[inline]
fn class(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align());
    if size > LARGEST {
        return None;
    }
    let bits = usize::BITS - (size.max(1 << MIN_SHIFT) - 1).leading_zeros();
    Some((bits - MIN_SHIFT) as usize)
}

impl State {
    /// A block of class `c` from the current chunk, or from a new one; null
    /// when the standard allocator has no more memory.
    ///
    /// Every block is aligned to its size, so a freed block serves any
    /// layout of its class. The bytes skipped to align one, and the end of
    /// a chunk too small for it, become free blocks of smaller classes.
    #[cold]
    unsafe fn carve(&mut self, c: usize) -> *mut u8 {
        let size = 1usize << (MIN_SHIFT as usize + c);
        loop {
            let start = self.next.wrapping_add(self.next.align_offset(size));
            if !self.next.is_null() && (start as usize) + size <= self.end as usize {
                // SAFETY: the gap is in the current chunk.
                unsafe { self.release(self.next, start) };
                self.next = start.wrapping_add(size);
                return start;
            }
            // SAFETY: the rest of the current chunk (none at first).
            unsafe { self.release(self.next, self.end) };
            // SAFETY: CHUNK is non-zero, CHUNK_ALIGN a power of two.
            let chunk = unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK, CHUNK_ALIGN)) };
            if chunk.is_null() {
                return chunk;
            }
            // Both ends rounded inwards to the smallest class's alignment.
            let min = 1 << MIN_SHIFT;
            let end = chunk.wrapping_add(CHUNK);
            self.next = chunk.wrapping_add(chunk.align_offset(min));
            self.end = end.wrapping_sub(end as usize % min);
        }
    }

    /// Puts the unused bytes `from..to` (both aligned to the smallest
    /// class) on the free lists, as the largest blocks aligned to their
    /// size that fit.
    unsafe fn release(&mut self, mut from: *mut u8, to: *mut u8) {
        while (from as usize) < (to as usize) {
            let room = to as usize - from as usize;
            let aligned = 1usize << (from as usize).trailing_zeros().min(usize::BITS - 1);
            let size = aligned
                .min(LARGEST)
                .min(1 << (usize::BITS - 1 - room.leading_zeros()));
            let c = (size.trailing_zeros() - MIN_SHIFT) as usize;
            // SAFETY: the block is unused memory of this allocator, aligned
            // to the smallest class, so a pointer fits at its start.
            unsafe { from.cast::<*mut u8>().write(self.free[c]) };
            self.free[c] = from;
            from = from.wrapping_add(size);
        }
    }
}

unsafe impl GlobalAlloc for SmallBlocks {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            // SAFETY: the caller's contract is System's.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: one thread (see `Sync`), and no reference to the state
        // outlives this call.
        let state = unsafe { &mut *self.state.get() };
        let block = state.free[c];
        if block.is_null() {
            // SAFETY: as above.
            return unsafe { state.carve(c) };
        }
        // SAFETY: a free block's first word is the next free block.
        state.free[c] = unsafe { block.cast::<*mut u8>().read() };
        block
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            // SAFETY: a block of no class came from System with this layout.
            return unsafe { System.dealloc(block, layout) };
        };
        // SAFETY: one thread; the block is at least a word, aligned to its
        // size, and no longer the caller's.
        let state = unsafe { &mut *self.state.get() };
        unsafe { block.cast::<*mut u8>().write(state.free[c]) };
        state.free[c] = block;
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            // SAFETY: the caller's contract is System's; fresh memory from
            // it may need no clearing.
            None => unsafe { System.alloc_zeroed(layout) },
            Some(_) => {
                // SAFETY: as `alloc`; the block has `layout.size()` bytes.
                let block = unsafe { self.alloc(layout) };
                if !block.is_null() {
                    unsafe { ptr::write_bytes(block, 0, layout.size()) };
                }
                block
            }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to the
        // alignment, does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            // SAFETY: both belong to System.
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            // The block already has room.
            (Some(old), Some(new)) if old == new => block,
            _ => {
                // SAFETY: the block is the caller's and valid for the
                // smaller of the two sizes.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

impl Default for SmallBlocks {
    fn default() -> Self {
        SmallBlocks::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn classes_fit_size_and_alignment() {
        let l = |size, align| class(Layout::from_size_align(size, align).unwrap());
        assert_eq!(l(0, 1), Some(0));
        assert_eq!(l(1, 1), Some(0));
        assert_eq!(l(16, 8), Some(0));
        assert_eq!(l(17, 1), Some(1));
        assert_eq!(l(4, 64), Some(2));
        assert_eq!(l(LARGEST, 1), Some(CLASSES - 1));
        assert_eq!(l(LARGEST + 1, 1), None);
        assert_eq!(l(8, 4096), None);
    }

    #[test]
    fn freed_blocks_are_reused_and_resizing_within_a_class_keeps_the_block() {
        let a = SmallBlocks::new();
        let layout = Layout::from_size_align(24, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            a.dealloc(p, layout);
            assert_eq!(a.alloc(layout), p, "the freed block comes back first");
            assert_eq!(a.realloc(p, layout, 32), p, "24 and 32 bytes share a class");
            let moved = a.realloc(p, Layout::from_size_align(32, 8).unwrap(), 5000);
            assert_ne!(moved, p);
            a.dealloc(moved, Layout::from_size_align(5000, 8).unwrap());
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Alloc {
            size: usize,
            align_shift: u32,
            zeroed: bool,
        },
        Free(usize),
        Grow(usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..6000, 0u32..8, any::<bool>()).prop_map(|(size, align_shift, zeroed)| Op::Alloc {
                size,
                align_shift,
                zeroed
            }),
            any::<usize>().prop_map(Op::Free),
            (any::<usize>(), 0usize..6000).prop_map(|(i, s)| Op::Grow(i, s)),
        ]
    }

    proptest! {
        /// Every live block is aligned, keeps what was written to it
        /// (through moves), and overlaps no other live block.
        #[test]
        fn blocks_keep_their_bytes_and_never_overlap(ops in proptest::collection::vec(op(), 1..300)) {
            let a = SmallBlocks::new();
            // (pointer, layout, fill byte)
            let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
            let mut stamp = 0u8;
            let check = |p: *mut u8, l: Layout, fill: u8| unsafe {
                std::slice::from_raw_parts(p, l.size()).iter().all(|&b| b == fill)
            };
            for op in ops {
                stamp = stamp.wrapping_add(1);
                match op {
                    Op::Alloc { size, align_shift, zeroed } => {
                        let layout = Layout::from_size_align(size.max(1), 1 << align_shift).unwrap();
                        let p = unsafe { if zeroed { a.alloc_zeroed(layout) } else { a.alloc(layout) } };
                        prop_assert!(!p.is_null());
                        prop_assert_eq!(p as usize % layout.align(), 0);
                        if zeroed {
                            prop_assert!(check(p, layout, 0));
                        }
                        unsafe { ptr::write_bytes(p, stamp, layout.size()) };
                        live.push((p, layout, stamp));
                    }
                    Op::Free(i) if !live.is_empty() => {
                        let (p, layout, fill) = live.swap_remove(i % live.len());
                        prop_assert!(check(p, layout, fill));
                        unsafe { a.dealloc(p, layout) };
                    }
                    Op::Grow(i, size) if !live.is_empty() => {
                        let i = i % live.len();
                        let (p, layout, fill) = live[i];
                        let size = size.max(1);
                        let q = unsafe { a.realloc(p, layout, size) };
                        prop_assert!(!q.is_null());
                        let new_layout = Layout::from_size_align(size, layout.align()).unwrap();
                        prop_assert_eq!(q as usize % layout.align(), 0);
                        let kept = Layout::from_size_align(layout.size().min(size), 1).unwrap();
                        prop_assert!(check(q, kept, fill));
                        unsafe { ptr::write_bytes(q, fill, size) };
                        live[i] = (q, new_layout, fill);
                    }
                    _ => {}
                }
                let mut spans: Vec<(usize, usize)> =
                    live.iter().map(|(p, l, _)| (*p as usize, *p as usize + l.size())).collect();
                spans.sort();
                prop_assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "live blocks overlap");
            }
            for (p, layout, fill) in live {
                prop_assert!(check(p, layout, fill));
                unsafe { a.dealloc(p, layout) };
            }
        }
    }
}
