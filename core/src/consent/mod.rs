//! Consent signals: decoders and the per-request consent pipeline.
