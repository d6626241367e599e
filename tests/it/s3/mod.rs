//! S3 end to end against a real `jadfs server` process, driven by the
//! `aws-sdk-s3` crate: what an S3 user sees.

mod buckets;
mod collection;
mod encryption;
mod full_disk;
mod integrity;
mod lifecycle;
mod listing;
mod multipart;
mod object_lock;
mod objects;
mod tags_and_cors;
mod versioning;

pub fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_string()
}

pub fn status<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> u16 {
    e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

pub async fn get_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client.get_object().bucket(bucket).key(key).send().await.unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body.collect().await.expect("body").into_bytes().to_vec()
}

pub fn md5_digest(data: &[u8]) -> u128 {
    use md5::{Digest, Md5};
    u128::from_be_bytes(Md5::digest(data).into())
}

/// The keys of a bucket, from one ListObjectsV2 page.
pub async fn list_keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let page = client.list_objects_v2().bucket(bucket).send().await.unwrap();
    page.contents().iter().filter_map(|o| o.key().map(String::from)).collect()
}
