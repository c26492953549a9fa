pub mod peer;
pub mod wire;
