"""What the buildfarm master and slave share: results, protocol names, CLI helpers."""
