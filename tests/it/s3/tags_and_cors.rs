//! Object and bucket tags, and CORS as a browser meets it.

use aws_sdk_s3::primitives::ByteStream;

use super::{code, status};
use crate::common::*;

#[tokio::test]
async fn objects_and_buckets_carry_tags() {
    use aws_sdk_s3::types::{Tag, Tagging};
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("tags").send().await.unwrap();
    s3.put_object()
        .bucket("tags")
        .key("k")
        .tagging("project=jadfs&tier=gold")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let tags = s3.get_object_tagging().bucket("tags").key("k").send().await.unwrap();
    let pairs: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(pairs, [("project", "jadfs"), ("tier", "gold")]);
    let head = s3.head_object().bucket("tags").key("k").send().await.unwrap();
    assert_eq!(head.tag_count(), Some(2));

    let eleven: Vec<Tag> = (0..11).map(|i| Tag::builder().key(format!("k{i}")).value("v").build().unwrap()).collect();
    let err = s3
        .put_object_tagging()
        .bucket("tags")
        .key("k")
        .tagging(Tagging::builder().set_tag_set(Some(eleven)).build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&err), code(&err)), (400, "InvalidTag".to_string()));

    s3.copy_object().bucket("tags").key("copy").copy_source("tags/k").send().await.unwrap();
    assert_eq!(s3.get_object_tagging().bucket("tags").key("copy").send().await.unwrap().tag_set().len(), 2);
    s3.delete_object_tagging().bucket("tags").key("k").send().await.unwrap();
    assert!(s3.get_object_tagging().bucket("tags").key("k").send().await.unwrap().tag_set().is_empty());

    let err = s3.get_bucket_tagging().bucket("tags").send().await.unwrap_err();
    assert_eq!((status(&err), code(&err)), (404, "NoSuchTagSet".to_string()));
    let set = Tagging::builder().tag_set(Tag::builder().key("team").value("storage").build().unwrap()).build().unwrap();
    s3.put_bucket_tagging().bucket("tags").tagging(set).send().await.unwrap();
    assert_eq!(s3.get_bucket_tagging().bucket("tags").send().await.unwrap().tag_set()[0].value(), "storage");
    s3.delete_bucket_tagging().bucket("tags").send().await.unwrap();
    assert!(s3.get_bucket_tagging().bucket("tags").send().await.is_err());
}

#[tokio::test]
async fn cors_rules_answer_preflights_and_decorate_browser_requests() {
    use aws_sdk_s3::presigning::PresigningConfig;
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("web").send().await.unwrap();
    s3.put_object().bucket("web").key("app.js").body(ByteStream::from_static(b"console.log(1)")).send().await.unwrap();
    let err = s3.get_bucket_cors().bucket("web").send().await.unwrap_err();
    assert_eq!((status(&err), code(&err)), (404, "NoSuchCORSConfiguration".to_string()));

    let rule = CorsRule::builder()
        .allowed_origins("https://*.example.com")
        .allowed_methods("GET")
        .allowed_methods("PUT")
        .allowed_headers("*")
        .expose_headers("ETag")
        .max_age_seconds(600)
        .build()
        .unwrap();
    s3.put_bucket_cors()
        .bucket("web")
        .cors_configuration(CorsConfiguration::builder().cors_rules(rule).build().unwrap())
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(got.cors_rules()[0].allowed_origins(), ["https://*.example.com"]);

    let http = reqwest::Client::new();
    let url = format!("{}/web/app.js", server.endpoint);
    let preflight = |origin: &'static str, method: &'static str| {
        http.request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "content-type, x-amz-date")
            .send()
    };
    let ok = preflight("https://app.example.com", "PUT").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(ok.headers()["access-control-allow-methods"], "GET, PUT");
    assert_eq!(ok.headers()["access-control-max-age"], "600");
    assert_eq!(preflight("https://evil.test", "GET").await.unwrap().status(), 403);
    assert_eq!(preflight("https://app.example.com", "DELETE").await.unwrap().status(), 403);

    let presigned = s3
        .get_object()
        .bucket("web")
        .key("app.js")
        .presigned(PresigningConfig::expires_in(std::time::Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let response = http.get(presigned.uri()).header("origin", "https://app.example.com").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(response.headers()["access-control-expose-headers"], "ETag");

    s3.delete_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(preflight("https://app.example.com", "GET").await.unwrap().status(), 403);
}
