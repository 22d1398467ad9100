//! protocol-gen: writes kafkawire's `src/protocol/messages/` from Apache
//! Kafka's JSON message schemas.
//!
//! Usage: `protocol-gen <schema-dir> <output-dir>` where `<schema-dir>` holds
//! the `*.json` files from `common/message/` in the kafka-clients jar. See
//! `regenerate.sh` for the whole pipeline.

mod emit;
mod model;
mod schema;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The APIs to generate. Each entry `N` reads `NRequest.json` and
/// `NResponse.json` and writes both to the module `snake_case(N)`.
/// Adding an API is adding its name here.
const APIS: &[&str] = &[
    "Produce",
    "Fetch",
    "ListOffsets",
    "Metadata",
    "OffsetCommit",
    "OffsetFetch",
    "FindCoordinator",
    "JoinGroup",
    "Heartbeat",
    "LeaveGroup",
    "SyncGroup",
    "DescribeGroups",
    "ListGroups",
    "SaslHandshake",
    "ApiVersions",
    "CreateTopics",
    "DeleteTopics",
    "DeleteRecords",
    "InitProducerId",
    "OffsetForLeaderEpoch",
    "AddPartitionsToTxn",
    "AddOffsetsToTxn",
    "EndTxn",
    "TxnOffsetCommit",
    "DescribeConfigs",
    "AlterConfigs",
    "SaslAuthenticate",
    "CreatePartitions",
    "DeleteGroups",
    "IncrementalAlterConfigs",
    "OffsetDelete",
    "DescribeCluster",
    "DescribeProducers",
    "DescribeTransactions",
    "ListTransactions",
    "ConsumerGroupHeartbeat",
    "ConsumerGroupDescribe",
];

/// Schemas without an API key, as (module, schema names).
const OTHER: &[(&str, &[&str])] = &[
    ("header", &["RequestHeader", "ResponseHeader"]),
    (
        "consumer_protocol",
        &["ConsumerProtocolSubscription", "ConsumerProtocolAssignment"],
    ),
];

/// Names `src/protocol/messages/runtime.rs` (hand-written, re-exported by
/// the generated `messages/mod.rs`) defines; generated types must not take them.
const RESERVED: &[&str] = &[
    "Uuid",
    "RawTaggedField",
    "EncodeError",
    "EncodeErrorKind",
    "Message",
    "Request",
    "ApiKey",
    "Reader",
    "DecodeError",
    "Bytes",
    "BytesMut",
];

fn run(schema_dir: &Path, out_dir: &Path) -> Result<(), String> {
    let mut groups: Vec<(String, Option<String>, Vec<String>)> = Vec::new();
    for api in APIS {
        groups.push((
            model::snake_case(api),
            Some(api.to_string()),
            vec![format!("{api}Request"), format!("{api}Response")],
        ));
    }
    for (module, names) in OTHER {
        groups.push((
            module.to_string(),
            None,
            names.iter().map(|s| s.to_string()).collect(),
        ));
    }

    // Parse everything first: struct names are chosen across all messages.
    let mut msgs = Vec::new();
    let mut owner = Vec::new();
    for (gi, (_, api, names)) in groups.iter().enumerate() {
        for name in names {
            let schema = schema::load(schema_dir, name)?;
            let msg = model::build(&schema)?;
            if api.is_some() && msg.api_key.is_none() {
                return Err(format!("{name} has no apiKey"));
            }
            msgs.push(msg);
            owner.push(gi);
        }
    }
    model::assign_names(&mut msgs, RESERVED)?;

    let mut modules: Vec<emit::Module> = groups
        .iter()
        .map(|(name, api, _)| emit::Module {
            name: name.clone(),
            api: api.clone(),
            msgs: Vec::new(),
        })
        .collect();
    for (msg, gi) in msgs.into_iter().zip(owner) {
        modules[gi].msgs.push(msg);
    }

    let api_keys = schema::all_api_keys(schema_dir)?;
    for m in &modules {
        if let Some(api) = &m.api {
            if !api_keys.iter().any(|(_, n)| n == api) {
                return Err(format!("{api} missing from the API key list"));
            }
        }
    }

    std::fs::create_dir_all(out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    // Remove stale generated files so a dropped API does not linger.
    if let Ok(entries) = std::fs::read_dir(out_dir) {
        for entry in entries.flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "rs") {
                let head = std::fs::read_to_string(&p).unwrap_or_default();
                if head.starts_with(emit::HEADER_LINE) {
                    std::fs::remove_file(&p)
                        .map_err(|e| format!("removing {}: {e}", p.display()))?;
                }
            }
        }
    }
    for m in &modules {
        write(
            &out_dir.join(format!("{}.rs", m.name)),
            &emit::emit_module(m),
        )?;
    }
    write(
        &out_dir.join("mod.rs"),
        &emit::emit_mod_rs(&modules, &api_keys),
    )?;
    Ok(())
}

fn write(path: &PathBuf, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: protocol-gen <schema-dir> <output-dir>");
        return ExitCode::from(2);
    }
    match run(Path::new(&args[1]), Path::new(&args[2])) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("protocol-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
