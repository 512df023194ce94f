"""The buildfarm slave: a twistd daemon that attaches to a master over PB and runs commands."""
