//! What a client reads when copies on disk are damaged.

use aws_sdk_s3::primitives::ByteStream;

use crate::common::*;

#[tokio::test]
async fn a_corrupt_copy_is_never_served_and_another_copy_is_read() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("rot").send().await.unwrap();
    let data = random_bytes(3 << 20, 31); // one chunk, three copies
    s3.put_object().bucket("rot").key("object").body(ByteStream::from(data.clone())).send().await.unwrap();
    let id = sha256(&data);
    let copy = |node: usize| server.data_dir().join(format!("node-{node}/chunks/{}/{}/{id}", &id[0..2], &id[2..4]));
    let mut rotten = data.clone();
    rotten[data.len() - 10] ^= 0x40;

    // Every copy rotten: the client gets an error, never the wrong bytes.
    for node in 1..=3 {
        std::fs::write(copy(node), &rotten).unwrap();
    }
    let out = s3.get_object().bucket("rot").key("object").send().await.unwrap();
    assert!(out.body.collect().await.is_err(), "a corrupt chunk must not be served whole");

    // One good copy left, on each node in turn (so in one round it is the
    // last the gateway tries): every read is whole and right. A node with a
    // bad copy withholds its last block; the gateway reads the next copy
    // whole again rather than a range of it, which would go unchecked.
    for good in 1..=3 {
        for node in 1..=3 {
            std::fs::write(copy(node), if node == good { &data } else { &rotten }).unwrap();
        }
        let out = s3.get_object().bucket("rot").key("object").send().await.unwrap();
        let bytes = out.body.collect().await.unwrap_or_else(|e| panic!("good copy on node {good}: {e:?}"));
        assert_eq!(sha256(&bytes.into_bytes()), id);
    }
}
