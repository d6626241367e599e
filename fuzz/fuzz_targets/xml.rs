//! Every XML body we parse: bounded, never a panic.
#![no_main]

use jadfs_gateway::xml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xml::parse(data, 1000);
    let _ = xml::parse_delete(data);
    let _ = xml::parse_complete(data);
    let _ = xml::parse_tagging(data);
    let _ = jadfs_gateway::fuzzing::parse_lifecycle(data);
});
