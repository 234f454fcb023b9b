//! The Element's configuration attributes.
//!
//! An attribute's effective value is the default declared in the Element's
//! manifest, overridden by the operator's configuration, overridden by the
//! deployment's value. Values are fixed for the life of a deployment.
//!
//! These functions call the host, so the examples here are compiled but not
//! run.

use std::str::FromStr;

use crate::__private::bindings::elements::platform::attributes as wit;
use crate::error::{Error, Result};

/// The value of attribute `name`, or `None` when it has no value.
///
/// ```no_run
/// use elements_sdk::attributes;
///
/// let greeting = attributes::get("greeting").unwrap_or_else(|| "Hello".to_owned());
/// ```
pub fn get(name: &str) -> Option<String> {
    wit::get(name)
}

/// The value of attribute `name`, or `default` when it has no value.
///
/// ```no_run
/// let greeting = elements_sdk::attributes::get_or("greeting", "Hello");
/// ```
pub fn get_or(name: &str, default: &str) -> String {
    get(name).unwrap_or_else(|| default.to_owned())
}

/// The value of attribute `name` parsed as `T`; `Ok(None)` when it has no
/// value. A value that does not parse is a 500 error naming the attribute
/// (it is a configuration mistake, not the client's).
///
/// ```no_run
/// use elements_sdk::{attributes, Result};
///
/// fn page_size() -> Result<u32> {
///     Ok(attributes::parse::<u32>("page-size")?.unwrap_or(20))
/// }
/// ```
pub fn parse<T>(name: &str) -> Result<Option<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    get(name).map(|v| parse_value(name, &v)).transpose()
}

/// The value of attribute `name` as a `T` (a number, a `bool`, ...);
/// `Ok(None)` when it has no value.
///
/// A typed attribute's value was checked against its declared `type`, `min`
/// and `max` when the Element was deployed (a manifest may write it as
/// `default = 280` or `default = "280"`), so for a `T` that holds the
/// declared range this does not fail. It is a 500 error naming the attribute
/// only when `T` is narrower than the declaration (say `u8` for an
/// `integer` with `max = 1000`).
///
/// ```no_run
/// use elements_sdk::{attributes, Result};
///
/// // element.toml: [attributes.page-size]
/// //               type = "integer"
/// //               min = 1
/// //               max = 500
/// //               default = 280
/// fn page_size() -> Result<u32> {
///     Ok(attributes::get_as::<u32>("page-size")?.unwrap_or(280))
/// }
/// ```
pub fn get_as<T>(name: &str) -> Result<Option<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    parse(name)
}

/// The value of attribute `name` parsed as `T`; a missing or unparsable value
/// is a 500 error naming the attribute.
///
/// ```no_run
/// use elements_sdk::{attributes, Result};
///
/// fn max_items() -> Result<usize> {
///     attributes::require("max-items")
/// }
/// ```
pub fn require<T>(name: &str) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    parse(name)?.ok_or_else(|| Error::internal(format!("attribute `{name}` is not set")))
}

/// Every attribute that has a value, as `(name, value)` pairs sorted by name.
///
/// ```no_run
/// for (name, value) in elements_sdk::attributes::list() {
///     elements_sdk::debug!("attribute {name} = {value}");
/// }
/// ```
pub fn list() -> Vec<(String, String)> {
    wit::list()
}

fn parse_value<T>(name: &str, value: &str) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| Error::internal(format!("attribute `{name}` has invalid value {value:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_attribute() {
        assert_eq!(parse_value::<u32>("n", "12").unwrap(), 12);
        let e = parse_value::<u32>("page-size", "lots").unwrap_err();
        assert_eq!(e.status(), 500);
        assert!(e.message().contains("`page-size`"), "{}", e.message());
        assert!(e.message().contains("\"lots\""), "{}", e.message());
    }

    #[test]
    fn typed_values_parse_as_their_rust_types() {
        // What a manifest's `default = 280` / `default = true` arrives as.
        assert_eq!(parse_value::<u32>("n", "280").unwrap(), 280);
        assert!(parse_value::<bool>("flag", "true").unwrap());
        assert_eq!(parse_value::<u8>("n", "280").unwrap_err().status(), 500);
    }
}
