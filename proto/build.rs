//! Compiles the hand-written Mesos `.proto` subset with protox (pure Rust, no
//! system `protoc`) and prost-build, and keeps the descriptor set so the JSON
//! codec can use reflection.

use std::path::PathBuf;

fn main() {
    let files = [
        "proto/mesos/v1/mesos.proto",
        "proto/mesos/v1/scheduler/scheduler.proto",
        "proto/mesos/v1/executor/executor.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"]).expect("the Mesos .proto subset must compile");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    std::fs::write(
        out.join("mesos_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )
    .expect("write descriptor set");
    prost_build::Config::new()
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com")
        .compile_fds(fds)
        .expect("prost-build generates the Mesos types");
}
