/// # MedFoundation
///
/// What every other MedSelect module may use and nothing here depends on: the seeded random source
/// (``SplitMix64``), a stable fingerprint (``FNV1a``), atomic file writes (``AtomicFile``) and the error protocol
/// every module's errors adopt (``MedError``), so that the command line prints any of them as one line.
/// Written once here so that no target writes its own copy because it cannot see another's.
public enum MedFoundationModule {}
