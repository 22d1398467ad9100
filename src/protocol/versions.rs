//! API version negotiation.
//!
//! Each request is sent at the highest version that both this client
//! implements ([`crate::protocol::messages::Message::VERSIONS`]) and the
//! broker advertises in ApiVersions. No overlap is a typed
//! `UnsupportedVersion` error naming the API and both ranges.

use crate::error::{Error, ErrorKind, Result};
use crate::protocol::messages::api_versions::ApiVersionsResponse;
use crate::protocol::messages::ApiKey;
use std::collections::BTreeMap;
use std::fmt;

/// Highest api key tracked; keys above it are ignored (none are defined yet).
const MAX_KEY: usize = 128;

/// What one broker advertised in ApiVersions.
#[derive(Clone)]
pub struct ApiVersionTable {
    /// Broker's (min, max) per api key; `None` if not advertised.
    ranges: Vec<Option<(i16, i16)>>,
    /// Finalized cluster features (KIP-584), e.g. `transaction.version`.
    finalized_features: BTreeMap<String, i16>,
}

impl ApiVersionTable {
    /// Builds the table from an ApiVersions response. Out-of-range keys and
    /// inverted ranges are ignored rather than trusted.
    pub fn from_response(resp: &ApiVersionsResponse) -> Self {
        let mut ranges = vec![None; MAX_KEY + 1];
        for k in &resp.api_keys {
            if let Some(slot) = usize::try_from(k.api_key)
                .ok()
                .and_then(|i| ranges.get_mut(i))
            {
                if k.min_version >= 0 && k.min_version <= k.max_version {
                    *slot = Some((k.min_version, k.max_version));
                }
            }
        }
        let finalized_features = resp
            .finalized_features
            .iter()
            .map(|f| (f.name.clone(), f.max_version_level))
            .collect();
        ApiVersionTable {
            ranges,
            finalized_features,
        }
    }

    /// A table from explicit ranges (tests, scripted peers).
    pub fn from_ranges(entries: &[(ApiKey, i16, i16)]) -> Self {
        let mut ranges = vec![None; MAX_KEY + 1];
        for &(k, lo, hi) in entries {
            ranges[k as i16 as usize] = Some((lo, hi));
        }
        ApiVersionTable {
            ranges,
            finalized_features: BTreeMap::new(),
        }
    }

    /// What the broker advertised for `key`.
    pub fn broker_range(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.ranges.get(key as i16 as usize).copied().flatten()
    }

    /// The highest version in both `ours` and the broker's range for `key`.
    pub fn negotiate(&self, key: ApiKey, ours: (i16, i16)) -> Result<i16> {
        let Some((bmin, bmax)) = self.broker_range(key) else {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!("the broker does not support the {} API", key.name()),
            )
            .with_api(key.name()));
        };
        let hi = ours.1.min(bmax);
        let lo = ours.0.max(bmin);
        if hi < lo {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!(
                    "no common version of {}: client supports v{}-v{}, broker v{}-v{}",
                    key.name(),
                    ours.0,
                    ours.1,
                    bmin,
                    bmax
                ),
            )
            .with_api(key.name()));
        }
        Ok(hi)
    }

    /// The finalized level of a cluster feature, e.g. `transaction.version`.
    pub fn finalized_feature(&self, name: &str) -> Option<i16> {
        self.finalized_features.get(name).copied()
    }
}

impl fmt::Debug for ApiVersionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (i, r) in self.ranges.iter().enumerate() {
            if let Some((lo, hi)) = r {
                let name = ApiKey::from_i16(i as i16).map(|k| k.name()).unwrap_or("?");
                m.entry(&format_args!("{name}({i})"), &format_args!("{lo}..={hi}"));
            }
        }
        m.finish()?;
        if !self.finalized_features.is_empty() {
            write!(f, " features {:?}", self.finalized_features)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_common_version() {
        let t =
            ApiVersionTable::from_ranges(&[(ApiKey::Metadata, 0, 12), (ApiKey::Produce, 3, 11)]);
        assert_eq!(t.negotiate(ApiKey::Metadata, (4, 13)).unwrap(), 12);
        assert_eq!(t.negotiate(ApiKey::Produce, (3, 9)).unwrap(), 9);
    }

    #[test]
    fn no_overlap_or_missing_api_is_unsupported_version() {
        let t = ApiVersionTable::from_ranges(&[(ApiKey::Produce, 9, 11)]);
        let e = t.negotiate(ApiKey::Produce, (3, 8)).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::UnsupportedVersion);
        assert!(
            e.to_string()
                .contains("client supports v3-v8, broker v9-v11"),
            "{e}"
        );
        let e = t.negotiate(ApiKey::Fetch, (4, 17)).unwrap_err();
        assert!(
            e.to_string().contains("does not support the Fetch API"),
            "{e}"
        );
    }
}
