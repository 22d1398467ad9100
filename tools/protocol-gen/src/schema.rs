//! Reading Kafka's JSON message schemas.
//!
//! The files are JSON with `//` line comments. Unknown keys are rejected so
//! that a new schema feature shows up as a generator error instead of being
//! silently ignored.

use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchemaFile {
    pub api_key: Option<i16>,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub valid_versions: String,
    pub flexible_versions: String,
    #[serde(default)]
    pub latest_version_unstable: bool,
    // Accepted so that `deny_unknown_fields` passes; they do not affect codecs.
    #[serde(default)]
    #[allow(dead_code)]
    pub deprecated_versions: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub listeners: Vec<String>,
    pub fields: Vec<FieldSpec>,
    #[serde(default)]
    pub common_structs: Vec<CommonStructSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommonStructSpec {
    pub name: String,
    pub versions: String,
    pub fields: Vec<FieldSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub versions: String,
    #[serde(default)]
    pub nullable_versions: Option<String>,
    #[serde(default)]
    pub tagged_versions: Option<String>,
    #[serde(default)]
    pub tag: Option<u32>,
    #[serde(default)]
    pub flexible_versions: Option<String>,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub ignorable: bool,
    #[serde(default)]
    pub about: String,
    #[serde(default)]
    pub fields: Option<Vec<FieldSpec>>,
    // Accepted but unused: map keys only matter to Java's hash-set views,
    // entity types to Kafka's tooling, and bytes are always zero-copy here.
    #[serde(default)]
    #[allow(dead_code)]
    pub map_key: bool,
    #[serde(default)]
    #[allow(dead_code)]
    pub entity_type: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub zero_copy: bool,
}

/// Removes `//` comments that are outside string literals.
pub fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '/' if chars.peek() == Some(&'/') => {
                // Drop everything up to (not including) the newline.
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

pub fn load(dir: &Path, name: &str) -> Result<SchemaFile, String> {
    let path = dir.join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let schema: SchemaFile = serde_json::from_str(&strip_comments(&text))
        .map_err(|e| format!("parsing {}: {e}", path.display()))?;
    if schema.name != name {
        return Err(format!("{} declares name {}", path.display(), schema.name));
    }
    Ok(schema)
}

/// Every request schema in `dir` as (api key, name without the "Request" suffix).
pub fn all_api_keys(dir: &Path) -> Result<Vec<(i16, String)>, String> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix("Request.json") else {
            continue;
        };
        // Only the key and type are needed here, and schemas of APIs we do
        // not generate may use features the strict parser does not accept.
        let path = entry.path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&strip_comments(&text))
            .map_err(|e| format!("parsing {}: {e}", path.display()))?;
        if v.get("type").and_then(|t| t.as_str()) != Some("request") {
            continue;
        }
        if let Some(key) = v.get("apiKey").and_then(|k| k.as_i64()) {
            let key = i16::try_from(key).map_err(|_| format!("{file}: bad apiKey {key}"))?;
            out.push((key, stem.to_string()));
        }
    }
    out.sort();
    for w in out.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(format!(
                "API key {} used by {} and {}",
                w[0].0, w[0].1, w[1].1
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_inside_strings_survive() {
        let s = "{ // c\n \"a\": \"http://x\" // d\n}";
        assert_eq!(strip_comments(s), "{ \n \"a\": \"http://x\" \n}");
    }
}
