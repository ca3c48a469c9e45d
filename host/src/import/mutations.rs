//! The importer never panics on what a MozaiksAI file may hold: every
//! value of every fixture file is replaced, one at a time, by a value of
//! another shape (null, a number, strings, a list, a map; in turn), and
//! the folder converted again.

use serde_yaml_ng::{Mapping, Value};

use super::convert_source;
use super::read::read_source;

/// The replacements tried at every place.
fn shapes() -> Vec<Value> {
    vec![
        Value::Null,
        Value::from(-1),
        Value::from(""),
        Value::from("x"),
        Value::Sequence(vec![Value::Null]),
        Value::Mapping(Mapping::new()),
    ]
}

/// Every place in `value`, as the keys and indexes leading to it.
fn places(value: &Value, at: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(at.clone());
    match value {
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Value::from(i));
                places(item, at, out);
                at.pop();
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map {
                at.push(key.clone());
                places(item, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(value: &'a mut Value, place: &[Value]) -> &'a mut Value {
    place.iter().fold(value, |v, step| match (v, step) {
        (Value::Sequence(items), Value::Number(n)) => &mut items[n.as_u64().unwrap() as usize],
        (Value::Mapping(map), key) => map.get_mut(key).unwrap(),
        _ => unreachable!(),
    })
}

#[test]
fn no_value_of_any_shape_makes_the_import_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/import/mozaiksai/workflows");
    let mut runs = 0;
    for case in ["AgentGenerator", "ValueEngine"] {
        let source = read_source(&root.join(case)).unwrap();
        for (stem, file) in &source.files {
            let mut all = Vec::new();
            places(&file.value, &mut Vec::new(), &mut all);
            for (i, place) in all.into_iter().enumerate() {
                let shapes = shapes();
                let shape = shapes[i % shapes.len()].clone();
                let mut mutated = source.clone();
                let target = mutated.files.get_mut(stem).unwrap();
                *at_mut(&mut target.value, &place) = shape;
                let converted = convert_source(&mutated, case).unwrap();
                assert!(converted.files.contains_key("agents.json"));
                runs += 1;
            }
        }
    }
    assert!(runs > 500, "{runs}");
}
