//! Compiles `proto/*.proto` with protox (pure Rust, no system `protoc`) and generates the prost
//! messages and the tonic clients and servers.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/shared.proto",
        "proto/status.proto",
        "proto/streams.proto",
        "proto/gossip.proto",
        "proto/serverfeatures.proto",
        "proto/persistent.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Payloads stay `Bytes` from the socket to the store and back: no copies.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
