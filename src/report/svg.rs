//! SVG charts for report.html: scales, nice ticks, paths, decimation.
