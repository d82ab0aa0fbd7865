//! Compiles `proto/daiban/v1` with protox, so the build needs no `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "daiban/v1/work_order.proto",
        "daiban/v1/agent.proto",
        "daiban/v1/points.proto",
        "daiban/v1/directory.proto",
        "daiban/v1/sms.proto",
    ];
    let descriptors = protox::compile(files, [&root])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("daiban_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;

    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
