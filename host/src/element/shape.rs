//! Deploy-time checks of the `elements:platform` interfaces an Element
//! exports (`request-handler`, `event-handler`, `match-handler`).
//!
//! wasmtime checks an exported function's type only when it makes an
//! instance, so an Element built against another release's WIT would deploy
//! and then fail every request, event or match call. Checking the types
//! against the component's own at deploy refuses it with a reason instead.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentNamedList, InstancePre, Lift, Lower};

/// The version of the `elements:platform` package this server's WIT
/// declares, which its exports carry in their names.
const VERSION: &str = "0.2.0";

/// Checks that function `func` of the exported `interface` (named without a
/// version) takes `Params` and returns `Results`, as this server calls it.
pub fn check_func<Params, Results, T>(pre: &InstancePre<T>, interface: &str, func: &str) -> Result<(), String>
where
    Params: ComponentNamedList + Lower,
    Results: ComponentNamedList + Lift,
{
    let component = pre.component();
    let export = format!("{interface}@{VERSION}");
    let item = component
        .get_export_index(None, &export)
        .and_then(|index| component.get_export(Some(&index), func));
    // `typecheck` and `instance_type` are the (doc-hidden) calls wasmtime's
    // own generated bindings make for a world's exported functions; the
    // pinned wasmtime 48.0.x keeps them.
    match item {
        Some((ComponentItem::ComponentFunc(f), _)) => f
            .typecheck::<Params, Results>(&pre.instance_type())
            .map_err(|e| format!("its `{func}` function: {e:#}")),
        _ => Err(format!("no function `{func}` in {export}")),
    }
}

/// Whether `component` exports `interface` (named without a version) in
/// any version or shape.
pub fn exports(component: &Component, interface: &str) -> bool {
    let engine = component.engine();
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.split('@').next() == Some(interface))
}
