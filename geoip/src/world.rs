//! The world's land outline for maps (the `/status` page, the simulator's
//! placement plots): Natural Earth's 1:110m land polygons (public domain),
//! as TopoJSON from the npm `world-atlas` package (v2.0.2, ISC; refreshed
//! by `scripts/fetch-world-atlas.sh`), embedded in the binary.
//!
//! TopoJSON stores shared borders once: quantized, delta-encoded arcs, and
//! polygons as lists of arc indices (`~i` = arc `i` reversed). [`land`]
//! decodes them once into rings of (longitude, latitude).

use std::sync::OnceLock;

use serde::Deserialize;

/// The embedded TopoJSON (`land-110m.json`).
const LAND_110M: &str = include_str!("../data/land-110m.json");

#[derive(Deserialize)]
struct Topology {
    transform: Transform,
    arcs: Vec<Vec<[i64; 2]>>,
    objects: Objects,
}

#[derive(Deserialize)]
struct Transform {
    scale: [f64; 2],
    translate: [f64; 2],
}

#[derive(Deserialize)]
struct Objects {
    land: Collection,
}

#[derive(Deserialize)]
struct Collection {
    geometries: Vec<Geometry>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Geometry {
    Polygon { arcs: Vec<Vec<i64>> },
    MultiPolygon { arcs: Vec<Vec<Vec<i64>>> },
}

/// A closed ring of (longitude, latitude) points.
pub type Ring = Vec<(f64, f64)>;

/// A land polygon: its outer ring, then its holes (lakes, inland seas).
pub type Polygon = Vec<Ring>;

/// Every polygon of the land outline.
pub fn land() -> &'static [Polygon] {
    static LAND: OnceLock<Vec<Polygon>> = OnceLock::new();
    LAND.get_or_init(|| {
        // The data is part of the binary: a parse failure is a build bug.
        let t: Topology = serde_json::from_str(LAND_110M).expect("embedded land-110m.json");
        decode(&t)
    })
}

fn decode(t: &Topology) -> Vec<Polygon> {
    let arcs: Vec<Ring> = t
        .arcs
        .iter()
        .map(|arc| {
            let (mut x, mut y) = (0i64, 0i64);
            arc.iter()
                .map(|[dx, dy]| {
                    x += dx;
                    y += dy;
                    (
                        x as f64 * t.transform.scale[0] + t.transform.translate[0],
                        y as f64 * t.transform.scale[1] + t.transform.translate[1],
                    )
                })
                .collect()
        })
        .collect();
    let ring = |indices: &[i64]| -> Ring {
        let mut out: Ring = Vec::new();
        for &i in indices {
            let (k, reversed) = if i < 0 { (!i, true) } else { (i, false) };
            let Some(arc) = usize::try_from(k).ok().and_then(|k| arcs.get(k)) else {
                continue;
            };
            let points: Box<dyn Iterator<Item = &(f64, f64)>> = if reversed {
                Box::new(arc.iter().rev())
            } else {
                Box::new(arc.iter())
            };
            // Consecutive arcs share their joining point.
            let skip = usize::from(!out.is_empty());
            out.extend(points.skip(skip).copied());
        }
        out
    };
    let polygon = |rings: &[Vec<i64>]| -> Polygon {
        rings
            .iter()
            .map(|r| ring(r))
            .filter(|r| r.len() >= 3)
            .collect()
    };
    let mut whole: Vec<Polygon> = Vec::new();
    for g in &t.objects.land.geometries {
        match g {
            Geometry::Polygon { arcs } => whole.push(polygon(arcs)),
            Geometry::MultiPolygon { arcs } => whole.extend(arcs.iter().map(|p| polygon(p))),
        }
    }
    // A few polygons cross the antimeridian (Fiji, Chukotka): make their
    // longitudes continuous, then cut them into the parts left and right
    // of it, so no ring jumps across the whole map.
    let mut out = Vec::new();
    for p in whole {
        let p: Polygon = p.iter().map(unwrap).collect();
        let (lo, hi) = p
            .iter()
            .flatten()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &(x, _)| {
                (lo.min(x), hi.max(x))
            });
        for shift in [-360.0, 0.0, 360.0] {
            if hi + shift < -180.0 || lo + shift > 180.0 {
                continue;
            }
            let part: Polygon = p
                .iter()
                .map(|r| {
                    let moved: Ring = r.iter().map(|&(x, y)| (x + shift, y)).collect();
                    clip(&moved, (-180.0, 180.0), (-90.0, 90.0))
                })
                .filter(|r| r.len() >= 3)
                .collect();
            // A part whose outer ring was cut away entirely is not drawn.
            if part.first().is_some_and(|r| r.len() >= 3) {
                out.push(part);
            }
        }
    }
    out
}

/// `ring` with each longitude moved by whole turns so that consecutive
/// points are less than half a turn apart.
fn unwrap(ring: &Ring) -> Ring {
    let mut out: Ring = Vec::with_capacity(ring.len());
    for &(x, y) in ring {
        let x = match out.last() {
            Some(&(px, _)) => x + 360.0 * ((px - x) / 360.0).round(),
            None => x,
        };
        out.push((x, y));
    }
    out
}

/// The part of `ring` inside the box `lon` × `lat` (Sutherland–Hodgman:
/// the box is convex, so any ring clips right).
pub fn clip(ring: &Ring, lon: (f64, f64), lat: (f64, f64)) -> Ring {
    type Inside = fn(f64, f64, f64) -> bool;
    let edges: [(Inside, f64, bool); 4] = [
        (|x, _, b| x >= b, lon.0, true),
        (|x, _, b| x <= b, lon.1, true),
        (|_, y, b| y >= b, lat.0, false),
        (|_, y, b| y <= b, lat.1, false),
    ];
    let mut poly = ring.clone();
    for (inside, bound, vertical) in edges {
        if poly.is_empty() {
            break;
        }
        let cross = |a: (f64, f64), b: (f64, f64)| {
            if vertical {
                let t = (bound - a.0) / (b.0 - a.0);
                (bound, a.1 + t * (b.1 - a.1))
            } else {
                let t = (bound - a.1) / (b.1 - a.1);
                (a.0 + t * (b.0 - a.0), bound)
            }
        };
        let mut out = Vec::with_capacity(poly.len());
        for i in 0..poly.len() {
            let cur = poly[i];
            let prev = poly[(i + poly.len() - 1) % poly.len()];
            let (ci, pi) = (inside(cur.0, cur.1, bound), inside(prev.0, prev.1, bound));
            if ci {
                if !pi {
                    out.push(cross(prev, cur));
                }
                out.push(cur);
            } else if pi {
                out.push(cross(prev, cur));
            }
        }
        poly = out;
    }
    poly
}

/// The land outline as one SVG path (`d` attribute; fill it with
/// `fill-rule="evenodd"` so holes stay open) in an equirectangular
/// projection onto a `width` × `height` box (longitude −180…180 left to
/// right, latitude 90…−90 top to bottom), coordinates rounded to 0.1.
pub fn land_svg_path(width: f64, height: f64) -> String {
    let mut d = String::new();
    for r in land().iter().flatten() {
        for (k, (lon, lat)) in r.iter().enumerate() {
            let x = (lon + 180.0) / 360.0 * width;
            let y = (90.0 - lat) / 180.0 * height;
            d.push(if k == 0 { 'M' } else { 'L' });
            d.push_str(&format!("{x:.1},{y:.1}"));
        }
        d.push('Z');
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inside(ring: &Ring, (px, py): (f64, f64)) -> bool {
        // Even-odd ray cast.
        let mut inside = false;
        let mut j = ring.len() - 1;
        for i in 0..ring.len() {
            let (xi, yi) = ring[i];
            let (xj, yj) = ring[j];
            if (yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }

    fn on_land(p: (f64, f64)) -> bool {
        land().iter().flatten().filter(|r| inside(r, p)).count() % 2 == 1
    }

    #[test]
    fn the_outline_knows_land_from_sea() {
        assert!(land().len() > 100, "{} polygons", land().len());
        for r in land().iter().flatten() {
            for &(lon, lat) in r {
                assert!((-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat));
            }
        }
        // Frankfurt, São Paulo, Sydney, Nairobi on land; the mid-Atlantic,
        // the Pacific, the Indian Ocean and the Caspian Sea (a hole) not.
        for p in [
            (8.68, 50.11),
            (-46.63, -23.55),
            (151.2, -33.87),
            (36.82, -1.29),
        ] {
            assert!(on_land(p), "{p:?} is land");
        }
        for p in [(-40.0, 30.0), (-150.0, 0.0), (80.0, -20.0), (50.5, 42.0)] {
            assert!(!on_land(p), "{p:?} is sea");
        }
        // Fiji straddles the antimeridian: land on both sides of it.
        assert!(
            on_land((178.4, -17.8)) || on_land((179.9, -16.5)),
            "Viti Levu / Vanua Levu"
        );
        // No ring jumps across the map.
        for r in land().iter().flatten() {
            for w in r.windows(2) {
                assert!((w[0].0 - w[1].0).abs() < 180.0, "{:?} → {:?}", w[0], w[1]);
            }
        }
        let d = land_svg_path(1000.0, 500.0);
        assert!(d.starts_with('M') && d.ends_with('Z') && d.len() > 10_000);
    }

    #[test]
    fn clipping_keeps_the_inside() {
        let square: Ring = vec![(-10.0, -10.0), (10.0, -10.0), (10.0, 10.0), (-10.0, 10.0)];
        let half = clip(&square, (0.0, 180.0), (-90.0, 90.0));
        assert!(half.iter().all(|&(x, _)| x >= 0.0), "{half:?}");
        assert_eq!(half.len(), 4, "{half:?}");
        assert!(clip(&square, (50.0, 60.0), (-90.0, 90.0)).is_empty());
        assert_eq!(clip(&square, (-180.0, 180.0), (-90.0, 90.0)), square);
    }
}
