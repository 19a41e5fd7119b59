"""The forecast protocol as the product: a preset from the data, selection on each series' last horizon,
members fitted on the whole history, their median, and a baseline where it does better (forecast command, API)."""
