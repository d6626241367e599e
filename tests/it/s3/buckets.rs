//! Buckets: create, list, delete, and their errors.

use aws_sdk_s3::primitives::ByteStream;

use super::{code, status};
use crate::common::*;

#[tokio::test]
async fn buckets_are_created_listed_and_deleted_with_s3_errors() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("alpha").send().await.unwrap();
    s3.create_bucket().bucket("beta.2").send().await.unwrap();

    // us-east-1 (the default) lets the owner create a bucket again, as AWS does.
    s3.create_bucket().bucket("alpha").send().await.unwrap();

    let names: Vec<String> =
        s3.list_buckets().send().await.unwrap().buckets().iter().filter_map(|b| b.name().map(String::from)).collect();
    assert_eq!(names, ["alpha", "beta.2"]);

    s3.head_bucket().bucket("alpha").send().await.unwrap();
    let missing = s3.head_bucket().bucket("gamma").send().await.unwrap_err();
    assert_eq!(status(&missing), 404);
    let location = s3.get_bucket_location().bucket("alpha").send().await.unwrap();
    assert!(location.location_constraint().is_none_or(|c| c.as_str().is_empty()));

    s3.put_object().bucket("alpha").key("k").body(ByteStream::from_static(b"x")).send().await.unwrap();
    let not_empty = s3.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&not_empty), "BucketNotEmpty");
    assert_eq!(status(&not_empty), 409);

    s3.delete_object().bucket("alpha").key("k").send().await.unwrap();
    s3.delete_bucket().bucket("alpha").send().await.unwrap();
    let gone = s3.list_objects_v2().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&gone), "NoSuchBucket");
    let gone = s3.get_object().bucket("alpha").key("k").send().await.unwrap_err();
    assert_eq!(code(&gone), "NoSuchBucket");
    let put_gone =
        s3.put_object().bucket("alpha").key("k").body(ByteStream::from_static(b"x")).send().await.unwrap_err();
    assert_eq!(status(&put_gone), 404);
}

#[tokio::test]
async fn outside_us_east_1_recreating_a_bucket_is_already_owned_by_you() {
    let server = Server::start_with(&["--region", "eu-west-1"]);
    // A client of an eu-west-1 endpoint signs for eu-west-1.
    let s3 = client_in("eu-west-1", &server.endpoint, ACCESS_KEY, SECRET_KEY);
    s3.create_bucket().bucket("alpha").send().await.unwrap();
    let again = s3.create_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!((status(&again), code(&again)), (409, "BucketAlreadyOwnedByYou".to_string()));
    let location = s3.get_bucket_location().bucket("alpha").send().await.unwrap();
    assert_eq!(location.location_constraint().map(|c| c.as_str()), Some("eu-west-1"));
}

#[tokio::test]
async fn virtual_host_style_addresses_the_bucket_in_the_host_name() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("vhost").send().await.unwrap();
    s3.put_object().bucket("vhost").key("dir/file.txt").body(ByteStream::from_static(b"by host")).send().await.unwrap();

    let addr: std::net::SocketAddr = server.endpoint.trim_start_matches("http://").parse().unwrap();
    let url = format!("http://vhost.localhost:{}/dir/file.txt", addr.port());
    let (headers, _) = sign_request("GET", &url, &[], b"", ACCESS_KEY, SECRET_KEY, std::time::SystemTime::now(), None);
    let client = reqwest::Client::builder().resolve("vhost.localhost", addr).build().unwrap();
    let mut request = client.get(&url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "by host");
}
