"""What a run leaves behind: results, console lines, trackers, pictures, export, the Hub."""
