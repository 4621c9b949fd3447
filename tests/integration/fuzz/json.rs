//! Generators of hostile signalling: client messages of every type, right in shape and
//! hostile in value (ids of real participants among huge ones, names at the length limits,
//! control characters), wrong in shape now and then, and byte-level mutations of the text.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Strings a validator has to get right: limits, Unicode, controls, markup.
pub fn hostile_string() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "",
            " ",
            "a",
            "Ana",
            "standup-2.team_a",
            "\u{0}",
            "\t\n",
            "a\u{7}b",
            "\u{202e}evil",
            "\u{feff}",
            "é",
            "💥",
            "<script>alert(1)</script>",
            "../../etc/passwd",
            "null",
            "camera",
            "0",
            "q;h;f",
        ])
        .prop_map(str::to_string),
        2 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        1 => (prop::sample::select(vec!["x", "é", " ", "💥", "\u{0}"]), 60usize..70)
            .prop_map(|(s, n)| s.repeat(n)),
        1 => (0usize..20_000).prop_map(|n| "y".repeat(n)),
    ]
    .boxed()
}

/// Numbers around ids that exist (small), limits, and ones no id can be.
pub fn hostile_number() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (0u64..8).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => Just(Value::from(u64::MAX)),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!(-1)),
        1 => prop::sample::select(vec![0.5f64, -0.0, 1e308, -1e308, 9007199254740993.0])
            .prop_map(Value::from),
        1 => Just(json!(4294967296u64)),
    ]
    .boxed()
}

/// Any JSON value, a few levels deep.
pub fn any_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        hostile_number(),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(hostile_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

#[derive(Clone, Copy, Debug)]
enum Field {
    Str,
    Bool,
    Num,
    OptNum,
    Role,
    Source,
    Mode,
    SourceMap,
    NumMap,
    StrList,
}

fn enum_value(names: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(names).prop_map(Value::from),
        1 => hostile_string().prop_map(Value::from),
    ]
    .boxed()
}

const ROLES: &[&str] = &["host", "presenter", "audience"];
const SOURCES: &[&str] = &["camera", "microphone", "screen", "screen_audio"];
const MODES: &[&str] = &["meeting", "webinar"];

/// A value of the field's type, hostile within it (or of another type now and then).
fn field_value(f: Field) -> BoxedStrategy<Value> {
    let right = match f {
        Field::Str => hostile_string().prop_map(Value::from).boxed(),
        Field::Bool => any::<bool>().prop_map(Value::from).boxed(),
        Field::Num => hostile_number(),
        Field::OptNum => prop_oneof![Just(Value::Null), hostile_number()].boxed(),
        Field::Role => enum_value(ROLES),
        Field::Source => enum_value(SOURCES),
        Field::Mode => enum_value(MODES),
        Field::SourceMap => prop::collection::btree_map(mid(), enum_value(SOURCES), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
            .boxed(),
        Field::NumMap => prop::collection::btree_map(
            prop_oneof![mid(), hostile_string()],
            hostile_number(),
            0..8,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed(),
        Field::StrList => prop::collection::vec(prop_oneof![mid(), hostile_string()], 0..24)
            .prop_map(|v| Value::Array(v.into_iter().map(Value::from).collect()))
            .boxed(),
    };
    prop_oneof![9 => right, 1 => any_value()].boxed()
}

/// A mid as browsers number them, or a track id as a map key.
fn mid() -> BoxedStrategy<String> {
    (0u32..12).prop_map(|n| n.to_string()).boxed()
}

/// Every client message type and its fields (see `confab::protocol::ClientMsg`).
const MESSAGES: &[(&str, &[(&str, Field)])] = &[
    (
        "join",
        &[
            ("room", Field::Str),
            ("name", Field::Str),
            ("role", Field::Role),
            ("token", Field::Str),
            ("mode", Field::Mode),
            ("password", Field::Str),
        ],
    ),
    (
        "offer",
        &[
            ("sdp", Field::Str),
            ("publish", Field::SourceMap),
            ("subscribe", Field::NumMap),
            ("audio_slots", Field::StrList),
        ],
    ),
    ("mute", &[("source", Field::Source), ("muted", Field::Bool)]),
    ("leave", &[]),
    ("raise_hand", &[("raised", Field::Bool)]),
    ("chat", &[("text", Field::Str)]),
    ("ask", &[("text", Field::Str)]),
    ("vote", &[("question", Field::Num), ("up", Field::Bool)]),
    ("mark_answered", &[("question", Field::Num)]),
    (
        "set_role",
        &[("participant", Field::Num), ("role", Field::Role)],
    ),
    (
        "mute_participant",
        &[("participant", Field::Num), ("source", Field::Source)],
    ),
    ("remove_participant", &[("participant", Field::Num)]),
    ("lock_room", &[("locked", Field::Bool)]),
    (
        "admit",
        &[("participant", Field::Num), ("admit", Field::Bool)],
    ),
    ("end_meeting", &[]),
    ("video_sizes", &[("sizes", Field::NumMap)]),
    ("pin", &[("participant", Field::OptNum)]),
];

/// One client message as JSON: a known type with its fields mostly present and of their
/// type; sometimes a field missing, an unknown one added, or an unknown type.
pub fn client_message(except: &'static [&'static str]) -> BoxedStrategy<Value> {
    let kinds: Vec<usize> = (0..MESSAGES.len())
        .filter(|&i| !except.contains(&MESSAGES[i].0))
        .collect();
    (
        prop::sample::select(kinds),
        prop::option::weighted(0.05, (hostile_string(), any_value())),
        prop::option::weighted(0.03, hostile_string()),
    )
        .prop_flat_map(|(i, extra, odd_type)| {
            let (name, fields) = MESSAGES[i];
            let values: Vec<BoxedStrategy<(bool, Value)>> = fields
                .iter()
                .map(|(_, f)| (prop::bool::weighted(0.97), field_value(*f)).boxed())
                .collect();
            (Just((name, fields, extra, odd_type)), values)
        })
        .prop_map(|((name, fields, extra, odd_type), values)| {
            let mut m = Map::new();
            m.insert("type".into(), Value::from(odd_type.unwrap_or(name.into())));
            for ((field, _), (present, v)) in fields.iter().zip(values) {
                if present {
                    m.insert((*field).into(), v);
                }
            }
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
        .boxed()
}

/// Byte-level damage to a message's text: flips, cuts, insertions.
#[derive(Debug, Clone)]
pub enum Damage {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
}

pub fn damage() -> BoxedStrategy<Vec<Damage>> {
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
            any::<usize>().prop_map(Damage::Cut),
            (
                any::<usize>(),
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 1..8),
                    prop::sample::select(vec![
                        b"{".to_vec(),
                        b"}".to_vec(),
                        b"\"".to_vec(),
                        b"\\u0000".to_vec(),
                        b"\\ud800".to_vec(),
                        b"[[[[[[[[[[[[[[[[".to_vec(),
                        b",".to_vec(),
                        b"1e999999".to_vec(),
                    ]),
                ]
            )
                .prop_map(|(i, b)| Damage::Insert(i, b)),
        ],
        0..4,
    )
    .boxed()
}

/// Applies `damage` to `text`'s bytes.
pub fn apply(text: &str, damage: &[Damage]) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    for d in damage {
        let n = b.len().max(1);
        match d {
            Damage::Flip(i, x) => {
                if let Some(c) = b.get_mut(i % n) {
                    *c ^= x;
                }
            }
            Damage::Cut(i) => b.truncate(i % n),
            Damage::Insert(i, s) => {
                let at = (i % n).min(b.len());
                b.splice(at..at, s.iter().copied());
            }
        }
    }
    b
}
