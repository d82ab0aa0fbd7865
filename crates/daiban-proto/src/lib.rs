//! The `daiban.v1` protocol: messages, server traits and clients generated
//! from `proto/daiban/v1`.

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("daiban.v1");

    /// Encoded `FileDescriptorSet` of the protocol, for gRPC server
    /// reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/daiban_descriptor.bin"));
}
