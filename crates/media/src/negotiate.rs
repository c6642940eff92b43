//! Codec negotiation checks on SDP.
