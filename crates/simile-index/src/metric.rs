use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The distance every backend reports. Smaller is always closer, on every backend:
///
/// | metric | distance reported |
/// |---|---|
/// | `Cosine` | `1 − cos(a, b)`, in `[0, 2]` |
/// | `DotProduct` | `−(a · b)` (negative similarity) |
/// | `Euclidean` | `‖a − b‖₂` (not squared) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// `1 − cos(a, b)`.
    Cosine,
    #[serde(rename = "dotproduct")]
    /// `−(a · b)`.
    DotProduct,
    /// `‖a − b‖₂`.
    Euclidean,
}

impl Metric {
    /// All metrics, in a fixed order.
    pub const ALL: [Metric; 3] = [Metric::Cosine, Metric::DotProduct, Metric::Euclidean];

    /// The name used in configs and run records.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::DotProduct => "dotproduct",
            Metric::Euclidean => "euclidean",
        }
    }

    /// Reference distance between two vectors, computed naively in f64.
    /// Backends must agree with this (up to float tolerance); the conformance suite checks it.
    pub fn reference_distance(self, a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        match self {
            Metric::DotProduct => -dot,
            Metric::Euclidean => a
                .iter()
                .zip(b)
                .map(|(x, y)| {
                    let d = f64::from(*x) - f64::from(*y);
                    d * d
                })
                .sum::<f64>()
                .sqrt(),
            Metric::Cosine => {
                let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                if na == 0.0 || nb == 0.0 {
                    1.0
                } else {
                    (1.0 - dot / (na * nb)).clamp(0.0, 2.0)
                }
            }
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cosine" => Ok(Metric::Cosine),
            "dotproduct" | "dot_product" | "ip" => Ok(Metric::DotProduct),
            "euclidean" | "l2" => Ok(Metric::Euclidean),
            _ => Err(Error::InvalidMetric(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_aliases() {
        assert_eq!("Cosine".parse::<Metric>().unwrap(), Metric::Cosine);
        assert_eq!("ip".parse::<Metric>().unwrap(), Metric::DotProduct);
        assert_eq!("l2".parse::<Metric>().unwrap(), Metric::Euclidean);
        assert!(matches!("l1".parse::<Metric>(), Err(Error::InvalidMetric(m)) if m == "l1"));
    }

    #[test]
    fn reference_distances() {
        let a = [1.0, 0.0];
        let b = [0.0, 2.0];
        assert!((Metric::Cosine.reference_distance(&a, &b) - 1.0).abs() < 1e-12);
        assert!((Metric::Euclidean.reference_distance(&a, &b) - 5f64.sqrt()).abs() < 1e-12);
        assert!((Metric::DotProduct.reference_distance(&a, &a) + 1.0).abs() < 1e-12);
        assert_eq!(Metric::Cosine.reference_distance(&a, &a), 0.0);
    }

    #[test]
    fn serde_names() {
        assert_eq!(
            serde_json::to_string(&Metric::DotProduct).unwrap(),
            "\"dotproduct\""
        );
        let m: Metric = serde_json::from_str("\"euclidean\"").unwrap();
        assert_eq!(m, Metric::Euclidean);
    }
}
