//! A structural diff of two JSON values: what a second delivery changed,
//! as JSON Pointer paths (RFC 6901) with the value on each side.

use serde_json::Value;

/// How many changes a diff lists at the most (the rest are counted).
pub(crate) const MAX_CHANGES: usize = 500;
/// How deep a diff looks; below, a differing value is one change.
const MAX_DEPTH: usize = 64;

/// One difference between two JSON values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// Only the second value has this path.
    Added(Value),
    /// Only the first value has this path.
    Removed(Value),
    /// Both have it, with these values.
    Changed(Value, Value),
}

/// The differences between `a` and `b` — an object's keys in sorted order
/// (serde_json keeps them sorted, not as the document had them), those of
/// `a` first, then the keys only `b` has; an array's items by index — at
/// most [`MAX_CHANGES`], and how many there were in all.
pub(crate) fn diff(a: &Value, b: &Value) -> (Vec<(String, Change)>, usize) {
    let mut out = Vec::new();
    let mut total = 0;
    walk(&mut String::new(), a, b, 0, &mut out, &mut total);
    (out, total)
}

fn push(out: &mut Vec<(String, Change)>, total: &mut usize, path: &str, change: Change) {
    *total += 1;
    if out.len() < MAX_CHANGES {
        let path = if path.is_empty() { "/" } else { path };
        out.push((path.to_owned(), change));
    }
}

fn walk(
    path: &mut String,
    a: &Value,
    b: &Value,
    depth: usize,
    out: &mut Vec<(String, Change)>,
    total: &mut usize,
) {
    if a == b {
        return;
    }
    let len = path.len();
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if depth < MAX_DEPTH => {
            for (k, va) in x {
                pointer_segment(path, k);
                match y.get(k) {
                    Some(vb) => walk(path, va, vb, depth + 1, out, total),
                    None => push(out, total, path, Change::Removed(va.clone())),
                }
                path.truncate(len);
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    pointer_segment(path, k);
                    push(out, total, path, Change::Added(vb.clone()));
                    path.truncate(len);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if depth < MAX_DEPTH => {
            for i in 0..x.len().max(y.len()) {
                pointer_segment(path, &i.to_string());
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => walk(path, va, vb, depth + 1, out, total),
                    (Some(va), None) => push(out, total, path, Change::Removed(va.clone())),
                    (None, Some(vb)) => push(out, total, path, Change::Added(vb.clone())),
                    (None, None) => {}
                }
                path.truncate(len);
            }
        }
        _ => push(out, total, path, Change::Changed(a.clone(), b.clone())),
    }
}

/// Appends `/segment` with `~` and `/` escaped as RFC 6901 says.
fn pointer_segment(path: &mut String, segment: &str) {
    path.push('/');
    for c in segment.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_have_no_changes() {
        let v = json!({"a": [1, {"b": null}], "c": "x"});
        assert_eq!(diff(&v, &v.clone()), (vec![], 0));
    }

    #[test]
    fn changes_added_and_removed_by_path() {
        let a = json!({"id": "evt_1", "data": {"object": {"amount": 100, "gone": true, "list": [1, 2, 3]}}});
        let b =
            json!({"id": "evt_1", "data": {"object": {"amount": 250, "list": [1, 5], "new": "y"}}});
        let (changes, total) = diff(&a, &b);
        assert_eq!(total, 5);
        assert_eq!(
            changes,
            vec![
                (
                    "/data/object/amount".to_owned(),
                    Change::Changed(json!(100), json!(250))
                ),
                ("/data/object/gone".to_owned(), Change::Removed(json!(true))),
                (
                    "/data/object/list/1".to_owned(),
                    Change::Changed(json!(2), json!(5))
                ),
                ("/data/object/list/2".to_owned(), Change::Removed(json!(3))),
                ("/data/object/new".to_owned(), Change::Added(json!("y"))),
            ]
        );
    }

    #[test]
    fn a_changed_type_is_one_change_and_the_root_is_slash() {
        let (changes, _) = diff(&json!({"a": {"b": 1}}), &json!({"a": [1]}));
        assert_eq!(changes[0].0, "/a");
        let (changes, _) = diff(&json!(1), &json!("1"));
        assert_eq!(
            changes,
            vec![("/".to_owned(), Change::Changed(json!(1), json!("1")))]
        );
    }

    #[test]
    fn keys_are_escaped_as_json_pointer() {
        let (changes, _) = diff(&json!({"a/b~c": 1}), &json!({"a/b~c": 2}));
        assert_eq!(changes[0].0, "/a~1b~0c");
    }

    #[test]
    fn a_huge_diff_is_cut_but_counted() {
        let a = Value::Array((0..2000).map(|i| json!(i)).collect());
        let b = Value::Array((0..2000).map(|i| json!(i + 1)).collect());
        let (changes, total) = diff(&a, &b);
        assert_eq!((changes.len(), total), (MAX_CHANGES, 2000));
    }
}
