//! The console's pages, as HTML (maud escapes every value it is given).

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use jadfs_meta::api::{BucketInfo, BucketUsage, KeyInfo, ListPage, NodeState, Permission, ReplicationMode};
use maud::{html, Markup, DOCTYPE};

use super::{session, Visitor};
use crate::admin::ClusterStatus;
use crate::error::S3Error;

pub enum Page {
    /// Root keys see the cluster; other keys how many buckets they have.
    Overview {
        status: Option<ClusterStatus>,
        buckets: usize,
    },
    Buckets {
        rows: Vec<BucketRow>,
        error: Option<S3Error>,
    },
    Bucket {
        bucket: String,
        prefix: String,
        page: ListPage,
        notice: Option<Notice>,
    },
    Keys {
        keys: Vec<KeyInfo>,
        buckets: Vec<BucketInfo>,
        notice: Option<Notice>,
    },
}

pub struct BucketRow {
    pub info: BucketInfo,
    pub usage: BucketUsage,
    /// Whether the visitor may delete it.
    pub owner: bool,
}

/// What a form just did, shown above its page.
pub enum Notice {
    Shared { key: String, url: String, expires: i64 },
    KeyCreated { access_key: String, secret_key: String },
    Granted { bucket: String, access_key: String },
    Failed(S3Error),
}

/// What every console answer carries: no caching, no framing, no
/// referrer (a presigned URL in a page must not leak to another site), and
/// only our own scripts and styles.
fn secured(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    builder
}

fn html_response(status: StatusCode, markup: Markup) -> HttpResponse {
    secured(HttpResponse::build(status)).content_type("text/html; charset=utf-8").body(markup.into_string())
}

pub fn render(visitor: &Visitor, page: Result<Page, S3Error>) -> HttpResponse {
    let page = match page {
        Ok(page) => page,
        Err(e) => return failure(Some(visitor), &e),
    };
    let (title, section, body) = match &page {
        Page::Overview { status, buckets } => ("Overview", "overview", overview(status.as_ref(), *buckets)),
        Page::Buckets { rows, error } => ("Buckets", "buckets", buckets(visitor, rows, error.as_ref())),
        Page::Bucket { bucket, prefix, page, notice } => {
            (bucket.as_str(), "buckets", bucket_page(visitor, bucket, prefix, page, notice.as_ref()))
        }
        Page::Keys { keys, buckets, notice } => {
            ("Access keys", "keys", keys_page(visitor, keys, buckets, notice.as_ref()))
        }
    };
    let status = match &page {
        Page::Buckets { error: Some(e), .. } => e.status(),
        _ => StatusCode::OK,
    };
    html_response(status, layout(title, Some((visitor, section)), body))
}

/// An error as a page (with the navigation when someone is signed in).
pub fn failure(visitor: Option<&Visitor>, e: &S3Error) -> HttpResponse {
    if e.status().is_server_error() {
        tracing::warn!(target: "jadfs::console", error = ?e, "a console page failed");
    }
    let body = html! {
        h1 { "Something went wrong" }
        (error_box(e))
        p { a href="/-/console/" { "Back to the console" } }
    };
    html_response(e.status(), layout("Error", visitor.map(|v| (v, "")), body))
}

/// The sign-in page, with a fresh token for its form in a cookie.
pub fn login(message: Option<&str>, secure: bool) -> HttpResponse {
    let token = session::token();
    let body = html! {
        div.login {
            div.card {
                div.brand.big { span.logo { "J" } "JaDFS" }
                p.muted { "Sign in with an access key and its secret." }
                @if let Some(message) = message { div.alert.error { (message) } }
                form method="post" action="/-/console/login" autocomplete="off" {
                    input type="hidden" name="csrf" value=(token);
                    label { "Access key" input type="text" name="access_key" required autofocus spellcheck="false"; }
                    label { "Secret key" input type="password" name="secret_key" required; }
                    button.primary type="submit" { "Sign in" }
                }
            }
        }
    };
    let mut response = html_response(StatusCode::OK, layout("Sign in", None, body));
    let _ = response.add_cookie(&session::cookie(
        session::LOGIN_COOKIE,
        token,
        secure,
        Some(std::time::Duration::from_secs(3600)),
    ));
    response
}

fn layout(title: &str, nav: Option<(&Visitor, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some((visitor, _)) = nav { meta name="csrf-token" content=(visitor.csrf); }
                title { (title) " · JaDFS" }
                link rel="stylesheet" href="/-/console/assets/console.css";
                script src="/-/console/assets/console.js" defer {}
            }
            body {
                @match nav {
                    Some((visitor, section)) => {
                        div.shell {
                            nav.side {
                                div.brand { span.logo { "J" } "JaDFS" }
                                a.active[section == "overview"] href="/-/console/" { "Overview" }
                                a.active[section == "buckets"] href="/-/console/buckets" { "Buckets" }
                                @if visitor.principal.root {
                                    a.active[section == "keys"] href="/-/console/keys" { "Access keys" }
                                }
                                div.who {
                                    span.muted { "Signed in as" }
                                    code { (visitor.access_key) }
                                    @if visitor.principal.root { span.badge.info { "root" } }
                                    form method="post" action="/-/console/logout" {
                                        (csrf_field(visitor))
                                        button.link type="submit" { "Sign out" }
                                    }
                                }
                            }
                            main { (body) }
                        }
                    }
                    None => { (body) }
                }
            }
        }
    }
}

fn csrf_field(visitor: &Visitor) -> Markup {
    html! { input type="hidden" name="csrf" value=(visitor.csrf); }
}

fn error_box(e: &S3Error) -> Markup {
    html! { div.alert.error { strong { (e.code.as_str()) } " " (e.message) } }
}

/// 1.5 MiB, 300 B: sizes for people.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn when(ms: i64) -> String {
    crate::ops::datetime(ms).format("%Y-%m-%d %H:%M UTC").to_string()
}

fn percent(part: u64, whole: u64) -> u64 {
    (part.min(whole) * 100).checked_div(whole).unwrap_or(0)
}

fn state_badge(state: NodeState, draining: bool) -> Markup {
    let class = match state {
        NodeState::Alive => "ok",
        NodeState::Suspect => "warn",
        NodeState::Dead => "bad",
    };
    html! {
        span class={"badge " (class)} { (state.as_str()) }
        @if draining { " " span.badge.info { "draining" } }
    }
}

fn bar(percent: u64, class: &str) -> Markup {
    html! { progress class=(class) value=(percent) max="100" { (percent) "%" } }
}

fn overview(status: Option<&ClusterStatus>, buckets: usize) -> Markup {
    let Some(status) = status else {
        return html! {
            h1 { "Overview" }
            div.cards {
                a.card.stat href="/-/console/buckets" { div.label { "Your buckets" } div.value { (buckets) } }
            }
        };
    };
    let s = &status.stats;
    let alive = status.nodes.iter().filter(|n| n.info.state == NodeState::Alive).count();
    let capacity: u64 = status.nodes.iter().map(|n| n.info.capacity_bytes).sum();
    let free: u64 = status.nodes.iter().map(|n| n.info.free_bytes).sum();
    html! {
        h1 { "Overview" }
        @if status.alarms.is_empty() {
            div.alert.ok { "No alarms: every meta member and storage node answers." }
        } @else {
            div.alert.error {
                strong { "Alarms" }
                ul { @for alarm in &status.alarms { li { (alarm) } } }
            }
        }
        div.cards {
            div.card.stat {
                div.label { "Meta leader" }
                div.value { @match status.leader { Some(l) => { "node " (l) }, None => { "none" } } }
                div.muted { (status.meta.len()) " members" }
            }
            div.card.stat {
                div.label { "Storage nodes alive" }
                div.value { (alive) " / " (status.nodes.len()) }
                div.muted { (size(capacity.saturating_sub(free))) " used of " (size(capacity)) }
            }
            a.card.stat href="/-/console/buckets" {
                div.label { "Buckets / objects" }
                div.value { (s.buckets) " / " (s.objects) }
                div.muted { (s.inline_objects) " kept inline" }
            }
            div.card.stat {
                div.label { "Stored" }
                div.value { (size(s.chunk_bytes)) }
                div.muted { (s.chunks) " chunks" }
            }
            div.card.stat {
                div.label { "Waiting for copies" }
                div.value { (s.repair_queue) }
                div.muted { "repair queue" }
            }
            div.card.stat {
                div.label { "To collect" }
                div.value { (s.orphaned_chunks) }
                div.muted { (s.pending_deletions) " copies to delete" }
            }
        }
        div.card {
            h2 { "Throughput of this gateway" }
            div.legend { span.key.in_ { "received" } span.key.out { "sent" } span #rate.muted {} }
            svg #throughput viewBox="0 0 600 140" preserveAspectRatio="none" role="img" aria-label="throughput" {}
        }
        div.card {
            h2 { "Storage nodes" }
            table {
                thead { tr { th { "Node" } th { "Address" } th { "Zone" } th { "State" } th { "Disk" } th.num { "Chunks" } th.num { "Held" } th { "Scrub" } } }
                tbody {
                    @for n in &status.nodes {
                        @let used = percent(n.info.capacity_bytes.saturating_sub(n.info.free_bytes), n.info.capacity_bytes);
                        tr {
                            td { code { (n.info.id) } }
                            td { (n.info.addr) }
                            td { (n.info.zone.as_deref().unwrap_or("–")) }
                            td { (state_badge(n.info.state, n.info.draining)) }
                            td.disk { (bar(used, if used >= 95 { "bad" } else if used >= 80 { "warn" } else { "ok" })) span.muted { (used) "% of " (size(n.info.capacity_bytes)) } }
                            td.num { (n.chunks) }
                            td.num { (size(n.bytes)) }
                            td {
                                @match &n.scrub {
                                    Some(scrub) if scrub.running => {
                                        @let done = percent(scrub.checked_bytes, scrub.pass_total_bytes);
                                        (bar(done, "info")) span.muted { (done) "%" }
                                    }
                                    Some(scrub) => {
                                        span.muted { @match scrub.last_completed_ms { Some(ms) => { "idle, last pass " (when(ms)) }, None => { "idle, no pass yet" } } }
                                    }
                                    None => { span.badge.bad { "no answer" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "Meta cluster" }
            table {
                thead { tr { th { "Member" } th { "Address" } th { "State" } th.num { "Term" } th.num { "Log" } th.num { "Committed" } th.num { "Applied" } } }
                tbody {
                    @for m in &status.meta {
                        tr {
                            td { (m.id) }
                            td { (m.addr) }
                            td {
                                @match (&m.state, &m.error) {
                                    (Some(state), _) => { span class={"badge " (if state == "Leader" { "info" } else { "ok" })} { (state) } }
                                    (None, _) => { span.badge.bad { "no answer" } }
                                }
                            }
                            td.num { (m.term.map(|v| v.to_string()).unwrap_or_default()) }
                            td.num { (m.last_log.map(|v| v.to_string()).unwrap_or_default()) }
                            td.num { (m.committed.map(|v| v.to_string()).unwrap_or_default()) }
                            td.num { (m.applied.map(|v| v.to_string()).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

fn replication(info: &BucketInfo) -> String {
    let r = &info.replication;
    match r.mode {
        ReplicationMode::Sync if r.write_quorum < r.copies => {
            format!("sync, {} of {} copies", r.write_quorum, r.copies)
        }
        ReplicationMode::Sync => format!("sync, {} copies", r.copies),
        ReplicationMode::Async => format!("async, {} copies", r.copies),
    }
}

fn buckets(visitor: &Visitor, rows: &[BucketRow], error: Option<&S3Error>) -> Markup {
    html! {
        h1 { "Buckets" }
        @if let Some(e) = error { (error_box(e)) }
        div.card {
            form.inline method="post" action="/-/console/buckets" {
                (csrf_field(visitor))
                input type="text" name="name" placeholder="new-bucket-name" required minlength="3" maxlength="63"
                    pattern="[a-z0-9][a-z0-9.\\-]*[a-z0-9]" title="3 to 63 lowercase letters, digits, dots and hyphens";
                button.primary type="submit" { "Create bucket" }
            }
        }
        div.card {
            @if rows.is_empty() {
                p.muted { "No buckets yet." }
            } @else {
                table {
                    thead { tr { th { "Name" } th.num { "Objects" } th.num { "Size" } th { "Replication" } th { "Created" } th {} } }
                    tbody {
                        @for row in rows {
                            tr {
                                td { a href={"/-/console/buckets/" (row.info.name)} { (row.info.name) } }
                                td.num { (row.usage.objects) }
                                td.num { (size(row.usage.bytes)) }
                                td { (replication(&row.info)) }
                                td { (when(row.info.created_ms)) }
                                td.actions {
                                    @if row.owner && row.usage.objects == 0 {
                                        form method="post" action={"/-/console/buckets/" (row.info.name) "/delete"} data-confirm={"Delete the bucket " (row.info.name) "?"} {
                                            (csrf_field(visitor))
                                            button.danger type="submit" { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn breadcrumbs(bucket: &str, prefix: &str) -> Markup {
    let mut parts = Vec::new();
    let mut at = String::new();
    for segment in prefix.split_terminator('/') {
        at.push_str(segment);
        at.push('/');
        parts.push((segment.to_string(), at.clone()));
    }
    html! {
        nav.crumbs {
            a href="/-/console/buckets" { "Buckets" } " / "
            a href=(super::bucket_page(bucket, "")) { (bucket) }
            @for (segment, at) in &parts { " / " a href=(super::bucket_page(bucket, at)) { (segment) } }
        }
    }
}

fn bucket_page(visitor: &Visitor, bucket: &str, prefix: &str, page: &ListPage, notice: Option<&Notice>) -> Markup {
    let action = |what: &str| format!("/-/console/buckets/{bucket}/objects/{what}");
    html! {
        (breadcrumbs(bucket, prefix))
        h1 { (bucket) }
        @if let Some(notice) = notice { (notice_box(notice)) }
        div.card {
            form #upload.inline data-url=(action("upload-url")) data-prefix=(prefix) {
                input #files type="file" multiple required;
                button.primary type="submit" { "Upload" }
                span.muted { "to " code { (bucket) "/" (prefix) } }
            }
            div #uploads {}
        }
        div.card {
            @if page.objects.is_empty() && page.common_prefixes.is_empty() {
                p.muted { "Nothing here yet." }
            } @else {
                table {
                    thead { tr { th { "Name" } th.num { "Size" } th { "Modified" } th {} } }
                    tbody {
                        @for folder in &page.common_prefixes {
                            tr {
                                td colspan="4" { a.folder href=(super::bucket_page(bucket, folder)) { (folder.strip_prefix(prefix).unwrap_or(folder)) } }
                            }
                        }
                        @for object in &page.objects {
                            tr {
                                td.name { (object.key.strip_prefix(prefix).unwrap_or(&object.key)) }
                                td.num { (size(object.size)) }
                                td { (when(object.last_modified_ms)) }
                                td.actions {
                                    a.button href={(action("download")) "?key=" (crate::sigv4::uri_encode(&object.key))} { "Download" }
                                    form.inline method="post" action=(action("share")) {
                                        (csrf_field(visitor))
                                        input type="hidden" name="key" value=(object.key);
                                        input type="hidden" name="prefix" value=(prefix);
                                        select name="expires" aria-label="link valid for" {
                                            option value="3600" { "1 hour" }
                                            option value="86400" { "1 day" }
                                            option value="604800" { "7 days" }
                                        }
                                        button type="submit" { "Share" }
                                    }
                                    form.inline method="post" action=(action("delete")) data-confirm={"Delete " (object.key) "?"} {
                                        (csrf_field(visitor))
                                        input type="hidden" name="key" value=(object.key);
                                        input type="hidden" name="prefix" value=(prefix);
                                        button.danger type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
                @if page.truncated {
                    @if let Some(last) = &page.last {
                        p { a.button href={(super::bucket_page(bucket, prefix)) (if prefix.is_empty() { "?" } else { "&" }) "after=" (crate::sigv4::uri_encode(last))} { "Next page" } }
                    }
                }
            }
        }
    }
}

fn notice_box(notice: &Notice) -> Markup {
    match notice {
        Notice::Shared { key, url, expires } => html! {
            div.alert.ok {
                p { "Anyone with this link can download " code { (key) } " for " (duration(*expires)) ", without signing in:" }
                div.copy { input #share-link type="text" readonly value=(url); button data-copy="share-link" { "Copy" } }
            }
        },
        Notice::KeyCreated { access_key, secret_key } => html! {
            div.alert.ok {
                p { strong { "Key created." } " Its secret is shown this once: keep it now." }
                div.copy { label { "Access key" } input #new-access-key type="text" readonly value=(access_key); button data-copy="new-access-key" { "Copy" } }
                div.copy { label { "Secret key" } input #new-secret-key type="text" readonly value=(secret_key); button data-copy="new-secret-key" { "Copy" } }
            }
        },
        Notice::Granted { bucket, access_key } => html! {
            div.alert.ok { "Access of " code { (access_key) } " to " code { (bucket) } " changed." }
        },
        Notice::Failed(e) => error_box(e),
    }
}

fn duration(seconds: i64) -> String {
    match seconds {
        s if s % 86400 == 0 => format!("{} day{}", s / 86400, if s == 86400 { "" } else { "s" }),
        s if s % 3600 == 0 => format!("{} hour{}", s / 3600, if s == 3600 { "" } else { "s" }),
        s => format!("{} minutes", s / 60),
    }
}

fn permission_name(p: Permission) -> &'static str {
    match p {
        Permission::Read => "read",
        Permission::Write => "write",
        Permission::Owner => "owner",
    }
}

fn keys_page(visitor: &Visitor, keys: &[KeyInfo], buckets: &[BucketInfo], notice: Option<&Notice>) -> Markup {
    let access_key_of = |id: &str| keys.iter().find(|k| k.id == id).map_or(id.to_string(), |k| k.access_key.clone());
    html! {
        h1 { "Access keys" }
        @if let Some(notice) = notice { (notice_box(notice)) }
        div.card {
            h2 { "New key" }
            form.inline method="post" action="/-/console/keys" {
                (csrf_field(visitor))
                input type="text" name="name" placeholder="a name to remember it by" maxlength="256";
                button.primary type="submit" { "Create key" }
            }
        }
        div.card {
            h2 { "Keys" }
            @if keys.is_empty() {
                p.muted { "No keys but the root keys of the configuration." }
            } @else {
                table {
                    thead { tr { th { "Access key" } th { "Name" } th { "Created" } th {} } }
                    tbody {
                        @for key in keys {
                            tr {
                                td { code { (key.access_key) } }
                                td { (key.name) }
                                td { (when(key.created_ms)) }
                                td.actions {
                                    form method="post" action="/-/console/keys/delete" data-confirm={"Delete the key " (key.access_key) "? Its owner loses access at once."} {
                                        (csrf_field(visitor))
                                        input type="hidden" name="access_key" value=(key.access_key);
                                        button.danger type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "Grants" }
            p.muted { "Owners may do anything with their buckets; a grant lets another key read, write or own one." }
            form.inline method="post" action="/-/console/grants" {
                (csrf_field(visitor))
                select name="bucket" required aria-label="bucket" {
                    @for b in buckets { option value=(b.name) { (b.name) } }
                }
                input type="text" name="access_key" list="access-keys" placeholder="access key" required;
                datalist #access-keys { @for key in keys { option value=(key.access_key) {} } }
                select name="permission" aria-label="permission" {
                    option value="read" { "read" }
                    option value="write" { "write" }
                    option value="owner" { "owner" }
                    option value="none" { "none (revoke)" }
                }
                button.primary type="submit" { "Set" }
            }
            table {
                thead { tr { th { "Bucket" } th { "Owner" } th { "Grants" } } }
                tbody {
                    @for b in buckets {
                        tr {
                            td { (b.name) }
                            td { code { (access_key_of(&b.owner)) } }
                            td {
                                @for (id, p) in &b.grants { span.badge.info { (access_key_of(id)) ": " (permission_name(*p)) } " " }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn values_are_escaped() {
        let page = html! { td { ("<script>alert(1)</script>\"") } }.into_string();
        assert_eq!(page, "<td>&lt;script&gt;alert(1)&lt;/script&gt;&quot;</td>");
    }
}
