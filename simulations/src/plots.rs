//! SVG plots (plotters): latency CDFs, load per edge over time, and a world
//! scatter of participants coloured by the region they were placed in.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::metrics::G114_MS;
use crate::report::cdf_limit_ms;
use crate::study::{SimError, Study};

/// Tableau 10.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];
/// Sites drawn per scatter panel (the most populous in the run).
const SCATTER_SITES: usize = 500;

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn err(path: &Path, e: impl std::fmt::Display) -> SimError {
    SimError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `latency_cdf.svg`, `edge_load.svg` and `placements.svg`.
pub(crate) fn write_plots(study: &Study, dir: &Path) -> Result<Vec<PathBuf>, SimError> {
    let mut files = Vec::new();
    for (name, f) in [
        (
            "latency_cdf.svg",
            cdf as fn(&Study, &Path) -> Result<(), SimError>,
        ),
        ("edge_load.svg", load),
        ("placements.svg", scatter),
    ] {
        let path = dir.join(name);
        f(study, &path)?;
        files.push(path);
    }
    Ok(files)
}

fn cdf(study: &Study, path: &Path) -> Result<(), SimError> {
    let limit = cdf_limit_ms(study);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: one-way mouth-to-ear latency per participant pair",
                study.scenario.name
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..limit as f64, 0f64..1f64)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("one-way latency (ms)")
        .y_desc("share of pairs at or below")
        .draw()
        .map_err(|e| err(path, e))?;
    chart
        .draw_series(LineSeries::new(
            [(G114_MS, 0.0), (G114_MS, 1.0)],
            BLACK.mix(0.4).stroke_width(1),
        ))
        .map_err(|e| err(path, e))?
        .label("150 ms (ITU-T G.114)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
    for (i, run) in study.runs.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64)> = run
            .histogram
            .cdf(limit)
            .into_iter()
            .map(|(ms, share)| (ms as f64, share))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(|e| err(path, e))?
            .label(run.report.name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    finish(&mut chart, &root, SeriesLabelPosition::LowerRight, path)
}

fn load(study: &Study, path: &Path) -> Result<(), SimError> {
    let s = &study.scenario;
    let n = study.runs.len().max(1);
    let root = SVGBackend::new(path, (900, 240 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let end_h = study
        .runs
        .first()
        .and_then(|r| r.load.times.last())
        .map_or(1.0, |t| (*t as f64 / 3_600_000.0).max(0.01));
    let peak = study
        .runs
        .iter()
        .flat_map(|r| r.load.loads.iter().flatten())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    for (panel, run) in root.split_evenly((n, 1)).iter().zip(&study.runs) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("{}: participants per edge ({})", run.report.name, s.name),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..end_h, 0f64..peak as f64 * 1.1)
            .map_err(|e| err(path, e))?;
        chart
            .configure_mesh()
            .x_desc("time (h)")
            .y_desc("participants")
            .draw()
            .map_err(|e| err(path, e))?;
        let mut labelled = vec![false; s.regions.len()];
        for (e, edge) in s.edges.iter().enumerate() {
            let c = color(edge.region);
            let pts: Vec<(f64, f64)> = run
                .load
                .times
                .iter()
                .zip(&run.load.loads)
                .map(|(t, l)| (*t as f64 / 3_600_000.0, l[e] as f64))
                .collect();
            let series = chart
                .draw_series(LineSeries::new(pts, c.stroke_width(1)))
                .map_err(|e| err(path, e))?;
            if !labelled[edge.region] {
                labelled[edge.region] = true;
                series
                    .label(s.regions[edge.region].id.as_str().to_string())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2))
                    });
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))
}

/// The placement map's extent: the inhabited latitudes.
const LON: (f64, f64) = (-180.0, 180.0);
const LAT: (f64, f64) = (-60.0, 80.0);

fn scatter(study: &Study, path: &Path) -> Result<(), SimError> {
    let s = &study.scenario;
    let nr = s.regions.len();
    let n = study.runs.len().max(1);
    let cols = if n > 1 { 2 } else { 1 };
    let rows = n.div_ceil(cols);
    let root = SVGBackend::new(path, (560 * cols as u32, 300 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    for (panel, run) in root.split_evenly((rows, cols)).iter().zip(&study.runs) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("{}: participants by chosen region", run.report.name),
                ("sans-serif", 14),
            )
            .margin(6)
            .x_label_area_size(20)
            .y_label_area_size(30)
            .build_cartesian_2d(LON.0..LON.1, LAT.0..LAT.1)
            .map_err(|e| err(path, e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .draw()
            .map_err(|e| err(path, e))?;
        // Land (Natural Earth 1:110m, the same outline as the /status map),
        // then its lakes and inland seas back in white.
        for (k, fill) in [(0, RGBColor(228, 228, 222)), (1, WHITE)] {
            chart
                .draw_series(
                    geomesh_geoip::world::land()
                        .iter()
                        .flat_map(|p| if k == 0 { &p[..1] } else { &p[1..] })
                        .map(|ring| geomesh_geoip::world::clip(ring, LON, LAT))
                        .filter(|ring| ring.len() >= 3)
                        .map(|ring| Polygon::new(ring, fill.filled())),
                )
                .map_err(|e| err(path, e))?;
        }
        // Per site: total placements and the region most of them went to.
        let mut sites: Vec<(u32, usize, usize)> = (0..study.meetings.sites.len())
            .filter_map(|site| {
                let row = &run.scatter[site * nr..site * nr + nr];
                let total: u32 = row.iter().sum();
                let top = (0..nr).max_by_key(|&r| (row[r], std::cmp::Reverse(r)))?;
                (total > 0).then_some((total, site, top))
            })
            .collect();
        sites.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        sites.truncate(SCATTER_SITES);
        let max = sites.first().map_or(1, |x| x.0).max(1) as f64;
        chart
            .draw_series(sites.iter().rev().map(|&(total, site, region)| {
                let p = study.meetings.sites[site].location;
                let r = 2.0 + 6.0 * (total as f64 / max).sqrt();
                Circle::new((p.lon, p.lat), r as i32, color(region).mix(0.75).filled())
            }))
            .map_err(|e| err(path, e))?;
        // The regions themselves.
        for (i, reg) in s.regions.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series([
                    Rectangle::new(
                        [
                            (reg.location.lon - 3.0, reg.location.lat - 2.0),
                            (reg.location.lon + 3.0, reg.location.lat + 2.0),
                        ],
                        c.filled(),
                    ),
                    Rectangle::new(
                        [
                            (reg.location.lon - 3.0, reg.location.lat - 2.0),
                            (reg.location.lon + 3.0, reg.location.lat + 2.0),
                        ],
                        BLACK.stroke_width(1),
                    ),
                ])
                .map_err(|e| err(path, e))?
                .label(reg.id.as_str().to_string())
                .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 8, y + 4)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .label_font(("sans-serif", 10))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))
}

/// The provisioning curve: p95 and mean pair latency against the number of
/// regions, each point labelled with the region it added.
pub(crate) fn plan_curve(
    title: &str,
    points: &[(usize, f64, f64, String)],
    path: &Path,
) -> Result<(), SimError> {
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let n = points.len().max(1) as f64;
    let top = points.iter().map(|p| p.1).fold(G114_MS, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5f64..n + 0.5, 0f64..top)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("regions (greedy, each step adds the labelled one)")
        .y_desc("one-way pair latency (ms)")
        .x_labels(points.len().max(1))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| err(path, e))?;
    for (i, (label, pick)) in [
        (
            "p95",
            (|p: &(usize, f64, f64, String)| p.1) as fn(&_) -> f64,
        ),
        ("mean", |p| p.2),
    ]
    .into_iter()
    .enumerate()
    {
        let c = color(i);
        let pts: Vec<(f64, f64)> = points.iter().map(|p| (p.0 as f64, pick(p))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|e| err(path, e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
            .map_err(|e| err(path, e))?;
    }
    chart
        .draw_series(points.iter().map(|p| {
            Text::new(
                format!("+{}", p.3),
                (p.0 as f64, p.1 + top * 0.03),
                ("sans-serif", 13),
            )
        }))
        .map_err(|e| err(path, e))?;
    finish(&mut chart, &root, SeriesLabelPosition::UpperRight, path)
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws the legend at `at` and writes the file.
fn finish<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    root: &DrawingArea<SVGBackend<'b>, Shift>,
    at: SeriesLabelPosition,
    path: &Path,
) -> Result<(), SimError> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}
