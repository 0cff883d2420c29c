"""Release records of nightly builds: what an image holds (manifest, SBOM), what changed since the last
release, and the release folders themselves (written whole or not at all, `latest`, retention)."""
