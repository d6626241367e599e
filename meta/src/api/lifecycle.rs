//! A bucket's lifecycle rules (S3's LifecycleConfiguration) and the one
//! judgement made of them, whether an object or an upload is due. The
//! state machine judges (`state/apply/lifecycle.rs`), with the time and the
//! length of a day carried in the command, so every replica decides alike.

use serde::{Deserialize, Serialize};

/// A real day. A shorter one is for tests only (see `--lifecycle-day`).
pub const DAY_MS: i64 = 86_400_000;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LifecycleRule {
    pub id: String,
    pub enabled: bool,
    pub filter: LifecycleFilter,
    /// The prefix was given as the rule's `Prefix` (S3's older form), not
    /// in a `Filter`: answered back the same way.
    #[serde(default)]
    pub legacy_prefix: bool,
    pub expiration: Option<Expiration>,
    /// Versions noncurrent this many days are deleted for good.
    #[serde(default)]
    pub noncurrent_days: Option<u32>,
    /// The newest this many noncurrent versions are kept whatever their age.
    #[serde(default)]
    pub newer_noncurrent_versions: Option<u32>,
    /// Multipart uploads begun this many days ago are aborted.
    #[serde(default)]
    pub abort_incomplete_days: Option<u32>,
}

/// Which objects a rule applies to: all of these must hold.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LifecycleFilter {
    pub prefix: String,
    pub tags: Vec<(String, String)>,
    pub size_greater_than: Option<u64>,
    pub size_less_than: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Expiration {
    /// Days after the object was last written (rounded up to the next
    /// midnight UTC, as S3 does, when a day is a real day).
    Days(u32),
    /// From this time on (midnight UTC), in ms since the epoch.
    Date(i64),
    /// Delete markers with no version left behind them (versioned buckets).
    ExpiredObjectDeleteMarker,
}

impl LifecycleFilter {
    pub fn matches(&self, key: &str, size: u64, tags: &[(String, String)]) -> bool {
        key.starts_with(&self.prefix)
            && self.size_greater_than.is_none_or(|min| size > min)
            && self.size_less_than.is_none_or(|max| size < max)
            && self.tags.iter().all(|wanted| tags.contains(wanted))
    }
}

/// When an object written at `written_ms` expires under `expiration`, if
/// it does, with days `day_ms` long.
pub fn expires_at(expiration: &Expiration, written_ms: i64, day_ms: i64) -> Option<i64> {
    match *expiration {
        Expiration::Days(days) => {
            let at = written_ms.saturating_add(i64::from(days).saturating_mul(day_ms));
            Some(if day_ms == DAY_MS { next_midnight(at) } else { at })
        }
        Expiration::Date(at) => Some(at),
        Expiration::ExpiredObjectDeleteMarker => None,
    }
}

/// The first midnight (UTC) at or after `ms`.
fn next_midnight(ms: i64) -> i64 {
    let midnight = ms.div_euclid(DAY_MS) * DAY_MS;
    if midnight == ms {
        ms
    } else {
        midnight.saturating_add(DAY_MS)
    }
}

/// The earliest expiry of an object among the enabled rules that apply to
/// it, with the rule's id: what `x-amz-expiration` tells.
pub fn object_expiry<'a>(
    rules: &'a [LifecycleRule],
    key: &str,
    size: u64,
    tags: &[(String, String)],
    written_ms: i64,
    day_ms: i64,
) -> Option<(i64, &'a str)> {
    rules
        .iter()
        .filter(|r| r.enabled && r.filter.matches(key, size, tags))
        .filter_map(|r| Some((expires_at(r.expiration.as_ref()?, written_ms, day_ms)?, r.id.as_str())))
        .min()
}

/// Whether a version noncurrent since `since_ms`, with `newer` noncurrent
/// versions newer than it, is due for deletion at `now_ms`.
pub fn noncurrent_due(
    rules: &[LifecycleRule],
    version: (&str, u64, &[(String, String)]),
    since_ms: i64,
    newer: u32,
    now_ms: i64,
    day_ms: i64,
) -> bool {
    let (key, size, tags) = version;
    rules.iter().filter(|r| r.enabled && r.filter.matches(key, size, tags)).any(|r| {
        r.noncurrent_days.is_some_and(|days| {
            expires_at(&Expiration::Days(days), since_ms, day_ms).is_some_and(|at| at <= now_ms)
                && r.newer_noncurrent_versions.is_none_or(|keep| newer >= keep)
        })
    })
}

/// Whether a delete marker made at `written_ms` with no version left
/// behind it is removed at `now_ms`: at once under ExpiredObjectDeleteMarker,
/// or once it is as old as an expiration by days says.
pub fn lone_marker_due(rules: &[LifecycleRule], key: &str, written_ms: i64, now_ms: i64, day_ms: i64) -> bool {
    rules.iter().filter(|r| r.enabled && key.starts_with(&r.filter.prefix) && r.filter.tags.is_empty()).any(
        |r| match &r.expiration {
            Some(Expiration::ExpiredObjectDeleteMarker) => true,
            Some(days @ Expiration::Days(_)) => expires_at(days, written_ms, day_ms).is_some_and(|at| at <= now_ms),
            _ => false,
        },
    )
}

/// Whether any enabled rule aborts an upload of `key` begun at
/// `initiated_ms`, at `now_ms`. (S3 matches uploads by prefix only.)
pub fn upload_due(rules: &[LifecycleRule], key: &str, initiated_ms: i64, now_ms: i64, day_ms: i64) -> bool {
    rules.iter().filter(|r| r.enabled && key.starts_with(&r.filter.prefix)).any(|r| {
        r.abort_incomplete_days.is_some_and(|days| {
            expires_at(&Expiration::Days(days), initiated_ms, day_ms).is_some_and(|at| at <= now_ms)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(expiration: Expiration, filter: LifecycleFilter) -> LifecycleRule {
        LifecycleRule { id: "r".into(), enabled: true, filter, expiration: Some(expiration), ..Default::default() }
    }

    #[test]
    fn days_round_up_to_midnight_utc_unless_a_day_is_shortened() {
        let noon = 19_000 * DAY_MS + DAY_MS / 2;
        assert_eq!(expires_at(&Expiration::Days(1), noon, DAY_MS), Some(19_002 * DAY_MS));
        assert_eq!(expires_at(&Expiration::Days(1), 19_000 * DAY_MS, DAY_MS), Some(19_001 * DAY_MS));
        assert_eq!(expires_at(&Expiration::Days(3), noon, 2_000), Some(noon + 6_000));
        assert_eq!(expires_at(&Expiration::Date(5), noon, DAY_MS), Some(5));
        assert_eq!(expires_at(&Expiration::ExpiredObjectDeleteMarker, noon, DAY_MS), None);
        assert_eq!(expires_at(&Expiration::Days(u32::MAX), i64::MAX - 5, DAY_MS).map(|t| t > 0), Some(true));
    }

    #[test]
    fn a_filter_needs_its_prefix_sizes_and_every_tag() {
        let filter = LifecycleFilter {
            prefix: "logs/".into(),
            tags: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            size_greater_than: Some(10),
            size_less_than: Some(100),
        };
        let tags = [("b".to_string(), "2".to_string()), ("a".to_string(), "1".to_string()), ("c".into(), "3".into())];
        assert!(filter.matches("logs/x", 50, &tags));
        assert!(!filter.matches("log/x", 50, &tags));
        assert!(!filter.matches("logs/x", 10, &tags), "greater than is strict");
        assert!(!filter.matches("logs/x", 100, &tags), "less than is strict");
        assert!(!filter.matches("logs/x", 50, &tags[..1]), "every tag is needed");
        assert!(!filter.matches("logs/x", 50, &[("a".into(), "2".into()), ("b".into(), "2".into())]));
        assert!(LifecycleFilter::default().matches("", 0, &[]));
    }

    #[test]
    fn the_earliest_enabled_applicable_rule_names_the_expiry() {
        let by_prefix = |id: &str, days, prefix: &str| LifecycleRule {
            id: id.into(),
            ..rule(Expiration::Days(days), LifecycleFilter { prefix: prefix.into(), ..Default::default() })
        };
        let mut rules = vec![by_prefix("late", 30, ""), by_prefix("soon", 2, "tmp/"), by_prefix("off", 1, "")];
        rules[2].enabled = false;
        assert_eq!(object_expiry(&rules, "tmp/a", 1, &[], 0, 1_000), Some((2_000, "soon")));
        assert_eq!(object_expiry(&rules, "doc/a", 1, &[], 0, 1_000), Some((30_000, "late")));
        assert_eq!(object_expiry(&rules[2..], "doc/a", 1, &[], 0, 1_000), None);
    }

    #[test]
    fn noncurrent_versions_go_after_their_days_beyond_the_newest_kept() {
        let rule = LifecycleRule {
            id: "old".into(),
            enabled: true,
            noncurrent_days: Some(2),
            newer_noncurrent_versions: Some(1),
            filter: LifecycleFilter { prefix: "db/".into(), ..Default::default() },
            ..Default::default()
        };
        let rules = [rule];
        let version = ("db/a", 5, &[][..]);
        assert!(!noncurrent_due(&rules, version, 1_000, 1, 2_999, 1_000), "not 2 days yet");
        assert!(noncurrent_due(&rules, version, 1_000, 1, 3_000, 1_000));
        assert!(!noncurrent_due(&rules, version, 1_000, 0, 9_000, 1_000), "the newest noncurrent one is kept");
        assert!(!noncurrent_due(&rules, ("logs/a", 5, &[]), 1_000, 1, 9_000, 1_000), "another prefix");
        let marker = LifecycleRule {
            enabled: true,
            expiration: Some(Expiration::ExpiredObjectDeleteMarker),
            ..Default::default()
        };
        assert!(lone_marker_due(&[marker], "any", 0, 0, 1_000) && !lone_marker_due(&rules, "db/a", 0, 9_000, 1_000));
        let days = LifecycleRule { enabled: true, expiration: Some(Expiration::Days(2)), ..Default::default() };
        assert!(
            !lone_marker_due(std::slice::from_ref(&days), "k", 1_000, 2_999, 1_000),
            "a marker younger than the days"
        );
        assert!(lone_marker_due(&[days], "k", 1_000, 3_000, 1_000));
    }

    #[test]
    fn uploads_are_aborted_by_prefix_after_their_days() {
        let mut rule = LifecycleRule {
            id: "abort".into(),
            enabled: true,
            abort_incomplete_days: Some(2),
            filter: LifecycleFilter { prefix: "big/".into(), ..Default::default() },
            ..Default::default()
        };
        let rules = [rule.clone()];
        assert!(!upload_due(&rules, "big/a", 1_000, 2_999, 1_000));
        assert!(upload_due(&rules, "big/a", 1_000, 3_000, 1_000));
        assert!(!upload_due(&rules, "small/a", 1_000, 9_000, 1_000));
        rule.enabled = false;
        assert!(!upload_due(&[rule], "big/a", 1_000, 9_000, 1_000));
    }
}
