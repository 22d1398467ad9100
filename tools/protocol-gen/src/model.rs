//! The resolved form of a schema: version ranges parsed, struct types
//! collected and named, defaults validated.

use crate::schema::{FieldSpec, SchemaFile};
use std::collections::HashMap;

/// An inclusive version range; empty when `lo > hi`. `hi == i16::MAX` means
/// open-ended ("N+").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Versions {
    pub lo: i16,
    pub hi: i16,
}

impl Versions {
    pub const NONE: Versions = Versions { lo: 1, hi: 0 };

    pub fn parse(s: &str) -> Result<Versions, String> {
        let s = s.trim();
        let num = |t: &str| {
            t.trim()
                .parse::<i16>()
                .map_err(|e| format!("bad version {t:?}: {e}"))
        };
        if s == "none" {
            Ok(Self::NONE)
        } else if let Some(lo) = s.strip_suffix('+') {
            Ok(Versions {
                lo: num(lo)?,
                hi: i16::MAX,
            })
        } else if let Some((lo, hi)) = s.split_once('-') {
            let v = Versions {
                lo: num(lo)?,
                hi: num(hi)?,
            };
            if v.is_empty() {
                return Err(format!("empty version range {s:?}"));
            }
            Ok(v)
        } else {
            let n = num(s)?;
            Ok(Versions { lo: n, hi: n })
        }
    }

    pub fn is_empty(self) -> bool {
        self.lo > self.hi
    }

    pub fn intersect(self, o: Versions) -> Versions {
        let v = Versions {
            lo: self.lo.max(o.lo),
            hi: self.hi.min(o.hi),
        };
        if v.is_empty() {
            Self::NONE
        } else {
            v
        }
    }

    pub fn contains(self, v: i16) -> bool {
        self.lo <= v && v <= self.hi
    }

    /// True if every version of `o` is in `self`.
    pub fn covers(self, o: Versions) -> bool {
        o.is_empty() || (self.lo <= o.lo && o.hi <= self.hi)
    }

    pub fn iter(self) -> impl Iterator<Item = i16> {
        let (lo, hi) = (self.lo, self.hi);
        (lo..=hi).take(if lo > hi {
            0
        } else {
            (hi as i32 - lo as i32 + 1) as usize
        })
    }

    pub fn describe(self) -> String {
        if self.is_empty() {
            "none".into()
        } else if self.hi == i16::MAX {
            format!("{}+", self.lo)
        } else if self.lo == self.hi {
            format!("{}", self.lo)
        } else {
            format!("{}-{}", self.lo, self.hi)
        }
    }

    /// A condition over `version` that holds exactly for the versions of
    /// `ctx` that are not in `self`.
    pub fn absent_cond(self, ctx: Versions) -> Cond {
        let x = self.intersect(ctx);
        if x.is_empty() {
            return Cond::Always;
        }
        match (x.lo > ctx.lo, x.hi < ctx.hi) {
            (false, false) => Cond::Never,
            (true, false) => Cond::Expr(format!("version < {}", x.lo)),
            (false, true) => Cond::Expr(format!("version > {}", x.hi)),
            (true, true) => Cond::Expr(format!("!({}..={}).contains(&version)", x.lo, x.hi)),
        }
    }

    /// A Rust boolean expression over `version` that is true exactly for the
    /// versions of `self` among those of `ctx`.
    pub fn cond(self, ctx: Versions) -> Cond {
        let x = self.intersect(ctx);
        if x.is_empty() {
            return Cond::Never;
        }
        let need_lo = x.lo > ctx.lo;
        let need_hi = x.hi < ctx.hi;
        match (need_lo, need_hi) {
            (false, false) => Cond::Always,
            _ if x.lo == x.hi => Cond::Expr(format!("version == {}", x.lo)),
            (true, false) => Cond::Expr(format!("version >= {}", x.lo)),
            (false, true) => Cond::Expr(format!("version <= {}", x.hi)),
            (true, true) => Cond::Expr(format!("({}..={}).contains(&version)", x.lo, x.hi)),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    Always,
    Never,
    Expr(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U16,
    U32,
    F64,
    Str,
    Bytes,
    Records,
    Uuid,
    /// Index into the owning message's `structs`.
    Struct(usize),
    Array(Box<Ty>),
}

impl Ty {
    fn primitive(name: &str) -> Option<Ty> {
        Some(match name {
            "bool" => Ty::Bool,
            "int8" => Ty::I8,
            "int16" => Ty::I16,
            "int32" => Ty::I32,
            "int64" => Ty::I64,
            "uint16" => Ty::U16,
            "uint32" => Ty::U32,
            "float64" => Ty::F64,
            "string" => Ty::Str,
            "bytes" => Ty::Bytes,
            "records" => Ty::Records,
            "uuid" => Ty::Uuid,
            _ => return None,
        })
    }

    /// Encoded width of fixed-size types.
    pub fn fixed_size(&self) -> Option<usize> {
        Some(match self {
            Ty::Bool | Ty::I8 => 1,
            Ty::I16 | Ty::U16 => 2,
            Ty::I32 | Ty::U32 => 4,
            Ty::I64 | Ty::F64 => 8,
            Ty::Uuid => 16,
            _ => return None,
        })
    }

    pub fn can_be_nullable(&self) -> bool {
        matches!(
            self,
            Ty::Str | Ty::Bytes | Ty::Records | Ty::Array(_) | Ty::Struct(_)
        )
    }
}

/// A field default, already checked against the field's type.
#[derive(Clone, Debug, PartialEq)]
pub enum Default {
    /// The type's own zero value (0, false, "", empty, zero uuid, default struct).
    Zero,
    Null,
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(String),
}

#[derive(Clone, Debug)]
pub struct Field {
    pub rust_name: String,
    pub ty: Ty,
    pub versions: Versions,
    pub nullable: Versions,
    /// Tag and the versions in which the field is tagged.
    pub tag: Option<(u32, Versions)>,
    /// Per-field override of the message's flexible versions.
    pub flexible_override: Option<Versions>,
    pub ignorable: bool,
    pub about: String,
    pub default: Default,
}

impl Field {
    /// The Rust type is `Option<_>`.
    pub fn optional(&self) -> bool {
        !self.nullable.is_empty() || self.ty == Ty::Records
    }
}

#[derive(Clone, Debug)]
pub struct StructDef {
    pub schema_name: String,
    pub rust_name: String,
    pub fields: Vec<Field>,
    /// Versions of the message in which this struct can appear.
    pub ctx: Versions,
    pub about: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
    Header,
    Data,
}

#[derive(Clone, Debug)]
pub struct Msg {
    pub name: String,
    pub kind: Kind,
    pub api_key: Option<i16>,
    pub valid: Versions,
    pub flexible: Versions,
    pub latest_unstable: bool,
    /// `structs[0]` is the message itself.
    pub structs: Vec<StructDef>,
}

impl Msg {
    pub fn has_flexible(&self) -> bool {
        !self.flexible.intersect(self.valid).is_empty()
    }
}

pub fn build(schema: &SchemaFile) -> Result<Msg, String> {
    let kind = match schema.kind.as_str() {
        "request" => Kind::Request,
        "response" => Kind::Response,
        "header" => Kind::Header,
        "data" => Kind::Data,
        k => return Err(format!("{}: unsupported schema type {k:?}", schema.name)),
    };
    let valid = Versions::parse(&schema.valid_versions)?;
    if valid.is_empty() {
        return Err(format!("{} has no valid versions", schema.name));
    }
    let flexible = Versions::parse(&schema.flexible_versions)?;
    if !flexible.is_empty() && flexible.hi != i16::MAX {
        return Err(format!(
            "{}: flexible versions must be open-ended",
            schema.name
        ));
    }
    let mut b = Builder {
        msg_name: &schema.name,
        structs: Vec::new(),
        by_name: HashMap::new(),
    };
    // Slot 0 is the message itself; fill it in last.
    b.structs.push(StructDef {
        schema_name: schema.name.clone(),
        rust_name: schema.name.clone(),
        fields: Vec::new(),
        ctx: valid,
        about: String::new(),
    });
    // Common structs are registered first so fields can refer to them by name.
    let mut pending = Vec::new();
    for cs in &schema.common_structs {
        let ctx = Versions::parse(&cs.versions)?.intersect(valid);
        let idx = b.declare(&cs.name, ctx, String::new())?;
        pending.push((idx, &cs.fields, ctx));
    }
    for (idx, fields, ctx) in pending {
        let fields = b.fields(fields, ctx)?;
        b.structs[idx].fields = fields;
    }
    let top = b.fields(&schema.fields, valid)?;
    b.structs[0].fields = top;
    let structs = b.structs;
    Ok(Msg {
        name: schema.name.clone(),
        kind,
        api_key: schema.api_key,
        valid,
        flexible,
        latest_unstable: schema.latest_version_unstable,
        structs,
    })
}

struct Builder<'a> {
    msg_name: &'a str,
    structs: Vec<StructDef>,
    by_name: HashMap<String, usize>,
}

impl Builder<'_> {
    fn declare(&mut self, name: &str, ctx: Versions, about: String) -> Result<usize, String> {
        if self.by_name.contains_key(name) || name == self.msg_name {
            return Err(format!("{}: struct {name} defined twice", self.msg_name));
        }
        let idx = self.structs.len();
        self.structs.push(StructDef {
            schema_name: name.to_string(),
            rust_name: name.to_string(),
            fields: Vec::new(),
            ctx,
            about,
        });
        self.by_name.insert(name.to_string(), idx);
        Ok(idx)
    }

    fn fields(&mut self, specs: &[FieldSpec], ctx: Versions) -> Result<Vec<Field>, String> {
        let mut out: Vec<Field> = Vec::new();
        for spec in specs {
            let f = self.field(spec, ctx)?;
            if out.iter().any(|o| o.rust_name == f.rust_name) {
                return Err(format!(
                    "{}: duplicate field {}",
                    self.msg_name, f.rust_name
                ));
            }
            if let Some((tag, _)) = f.tag {
                if out.iter().any(|o| o.tag.map(|t| t.0) == Some(tag)) {
                    return Err(format!("{}: duplicate tag {tag}", self.msg_name));
                }
            }
            out.push(f);
        }
        Ok(out)
    }

    fn field(&mut self, spec: &FieldSpec, ctx: Versions) -> Result<Field, String> {
        let here = format!("{}.{}", self.msg_name, spec.name);
        let versions = Versions::parse(&spec.versions)?;
        let nullable = match &spec.nullable_versions {
            Some(s) => Versions::parse(s)?,
            None => Versions::NONE,
        };
        let field_ctx = versions.intersect(ctx);
        let ty = self.ty(&spec.ty, spec, field_ctx, &here)?;
        if !nullable.is_empty() && !ty.can_be_nullable() {
            return Err(format!("{here}: type {} cannot be nullable", spec.ty));
        }
        let tag = match (spec.tag, &spec.tagged_versions) {
            (None, None) => None,
            (Some(t), Some(tv)) => {
                let tv = Versions::parse(tv)?;
                if tv != versions {
                    // Kafka allows a field to be tagged in only some of its
                    // versions; none of our schemas do, so refuse rather than
                    // guess at the layout.
                    return Err(format!("{here}: taggedVersions differ from versions"));
                }
                if tv.hi != i16::MAX {
                    return Err(format!("{here}: taggedVersions must be open-ended"));
                }
                Some((t, tv))
            }
            _ => return Err(format!("{here}: tag and taggedVersions must come together")),
        };
        let flexible_override = match &spec.flexible_versions {
            Some(s) => {
                let v = Versions::parse(s)?;
                if !matches!(ty, Ty::Str | Ty::Bytes) {
                    return Err(format!(
                        "{here}: flexibleVersions only supported on strings/bytes"
                    ));
                }
                Some(v)
            }
            None => None,
        };
        let default = parse_default(spec.default.as_ref(), &ty, &here)?;
        if default == Default::Null && !nullable.covers(field_ctx) {
            return Err(format!(
                "{here}: null default but not nullable in all versions"
            ));
        }
        Ok(Field {
            rust_name: snake_case(&spec.name),
            ty,
            versions,
            nullable,
            tag,
            flexible_override,
            ignorable: spec.ignorable,
            about: spec.about.clone(),
            default,
        })
    }

    fn ty(
        &mut self,
        name: &str,
        spec: &FieldSpec,
        ctx: Versions,
        here: &str,
    ) -> Result<Ty, String> {
        if let Some(elem) = name.strip_prefix("[]") {
            if elem.starts_with("[]") {
                return Err(format!("{here}: nested arrays are not supported"));
            }
            return Ok(Ty::Array(Box::new(self.ty(elem, spec, ctx, here)?)));
        }
        if let Some(p) = Ty::primitive(name) {
            if spec.fields.is_some() {
                return Err(format!("{here}: primitive type with fields"));
            }
            return Ok(p);
        }
        if !name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
            return Err(format!("{here}: unknown type {name:?}"));
        }
        match &spec.fields {
            Some(fields) => {
                let idx = self.declare(name, ctx, spec.about.clone())?;
                let fields = self.fields(fields, ctx)?;
                self.structs[idx].fields = fields;
                Ok(Ty::Struct(idx))
            }
            None => match self.by_name.get(name) {
                Some(&idx) => Ok(Ty::Struct(idx)),
                None => Err(format!("{here}: unknown struct type {name}")),
            },
        }
    }
}

fn parse_default(v: Option<&serde_json::Value>, ty: &Ty, here: &str) -> Result<Default, String> {
    use serde_json::Value;
    let Some(v) = v else { return Ok(Default::Zero) };
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => return Err(format!("{here}: unsupported default {other}")),
    };
    let bad = || format!("{here}: default {text:?} is not valid for its type");
    if text == "null" {
        return if ty.can_be_nullable() {
            Ok(Default::Null)
        } else {
            Err(bad())
        };
    }
    let int_range = |lo: i128, hi: i128| -> Result<Default, String> {
        let (neg, digits) = match text.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, text.as_str()),
        };
        let n = if let Some(hex) = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            i128::from_str_radix(hex, 16)
        } else if digits.len() > 1 && digits.starts_with('0') {
            i128::from_str_radix(&digits[1..], 8)
        } else {
            digits.parse::<i128>()
        }
        .map_err(|_| bad())?;
        let n = if neg { -n } else { n };
        if n < lo || n > hi {
            return Err(bad());
        }
        Ok(if n == 0 {
            Default::Zero
        } else {
            Default::Int(n)
        })
    };
    match ty {
        Ty::I8 => int_range(i8::MIN.into(), i8::MAX.into()),
        Ty::I16 => int_range(i16::MIN.into(), i16::MAX.into()),
        Ty::I32 => int_range(i32::MIN.into(), i32::MAX.into()),
        Ty::I64 => int_range(i64::MIN.into(), i64::MAX.into()),
        Ty::U16 => int_range(0, u16::MAX.into()),
        Ty::U32 => int_range(0, u32::MAX.into()),
        Ty::F64 => {
            let f: f64 = text.parse().map_err(|_| bad())?;
            Ok(if f == 0.0 {
                Default::Zero
            } else {
                Default::Float(f)
            })
        }
        Ty::Bool => match text.as_str() {
            "true" => Ok(Default::Bool(true)),
            "false" => Ok(Default::Zero),
            _ => Err(bad()),
        },
        Ty::Str => Ok(if text.is_empty() {
            Default::Zero
        } else {
            Default::Str(text)
        }),
        _ => Err(bad()),
    }
}

pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = if i > 0 { Some(chars[i - 1]) } else { None };
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "box", "break", "const", "continue", "crate", "dyn", "else",
        "enum", "extern", "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match",
        "mod", "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait",
        "true", "try", "type", "unsafe", "use", "where", "while", "yield",
    ];
    if KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// Gives every struct a crate-unique Rust name: the schema's own name when no
/// other generated struct (or reserved runtime name) shares it, otherwise the
/// message name followed by the schema name.
pub fn assign_names(msgs: &mut [Msg], reserved: &[&str]) -> Result<(), String> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for m in msgs.iter() {
        for s in &m.structs {
            *count.entry(s.schema_name.clone()).or_default() += 1;
        }
    }
    let msg_names: Vec<String> = msgs.iter().map(|m| m.name.clone()).collect();
    for m in msgs.iter_mut() {
        let msg_name = m.name.clone();
        for (i, s) in m.structs.iter_mut().enumerate() {
            if i == 0 {
                continue;
            }
            let clash = count[&s.schema_name] > 1
                || msg_names.contains(&s.schema_name)
                || reserved.contains(&s.schema_name.as_str());
            s.rust_name = if clash {
                format!("{msg_name}{}", s.schema_name)
            } else {
                s.schema_name.clone()
            };
        }
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    for m in msgs.iter() {
        for s in &m.structs {
            if let Some(prev) = seen.insert(s.rust_name.clone(), m.name.clone()) {
                return Err(format!(
                    "type name {} used in {prev} and {}",
                    s.rust_name, m.name
                ));
            }
            if reserved.contains(&s.rust_name.as_str()) {
                return Err(format!("type name {} is reserved", s.rust_name));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_conditions() {
        let ctx = Versions { lo: 3, hi: 13 };
        assert_eq!(Versions::parse("0+").unwrap().cond(ctx), Cond::Always);
        assert_eq!(
            Versions::parse("5+").unwrap().cond(ctx),
            Cond::Expr("version >= 5".into())
        );
        assert_eq!(
            Versions::parse("0-4").unwrap().cond(ctx),
            Cond::Expr("version <= 4".into())
        );
        assert_eq!(
            Versions::parse("8-10").unwrap().cond(ctx),
            Cond::Expr("(8..=10).contains(&version)".into())
        );
        assert_eq!(Versions::parse("0-2").unwrap().cond(ctx), Cond::Never);
        assert_eq!(
            Versions::parse("13").unwrap().cond(ctx),
            Cond::Expr("version == 13".into())
        );
    }

    #[test]
    fn snake_names() {
        assert_eq!(snake_case("ThrottleTimeMs"), "throttle_time_ms");
        assert_eq!(snake_case("TopicId"), "topic_id");
        assert_eq!(snake_case("Type"), "type_");
        assert_eq!(snake_case("IsrNodes"), "isr_nodes");
        assert_eq!(snake_case("Enable2Pc"), "enable2_pc");
    }
}
