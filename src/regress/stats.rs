//! Statistics on samples: mean, standard deviation, Student-t intervals, Welch's t,
//! Mann-Whitney U, least-squares trend, IQR fences, moving averages.
//!
//! Every function here takes a plain slice of finite values and answers `None` (or an
//! empty vector) when it has too few of them; nothing returned is NaN or infinite. The
//! estimators are the textbook ones, chosen to match scipy/numpy so that the unit tests can
//! check them against reference values: sample standard deviation (n - 1), the Student-t
//! interval of the mean, Welch's unequal-variance t test with Welch-Satterthwaite degrees
//! of freedom, Mann-Whitney U by the tie-corrected normal approximation with continuity
//! correction (scipy's `method="asymptotic"`), ordinary least squares on x = 0, 1, 2, ...
//! (or any x) with a Student-t test and interval of the slope (scipy's `linregress`), and Tukey's fences on
//! quartiles interpolated linearly (numpy's default `percentile`). Distribution functions
//! come from `statrs`.

use super::{Anomaly, Interval};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// `Some(x)` when `x` is finite, else `None`: the last guard of every figure.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Whether every value equals the first (true for an empty slice).
fn is_constant(xs: &[f64]) -> bool {
    xs.windows(2).all(|w| w[0] == w[1])
}

/// Whether `level` can be the coverage of a two-sided interval: strictly inside (0, 1).
pub(crate) fn valid_level(level: f64) -> bool {
    level > 0.0 && level < 1.0
}

/// Arithmetic mean; `None` when `xs` is empty. A constant sample gives its value exactly
/// (no rounding from the sum), so that equal samples compare equal downstream.
pub fn mean(xs: &[f64]) -> Option<f64> {
    match xs {
        [] => None,
        [first, ..] if is_constant(xs) => Some(*first),
        _ => finite(xs.iter().sum::<f64>() / xs.len() as f64),
    }
}

/// Sum of squared deviations from the mean (exactly 0 for a constant sample).
pub(crate) fn sum_sq_dev(xs: &[f64]) -> f64 {
    if is_constant(xs) {
        return 0.0;
    }
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    xs.iter().map(|x| (x - m) * (x - m)).sum()
}

/// Sample variance (n - 1 denominator); `None` when there are fewer than 2 values.
fn variance(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    finite(sum_sq_dev(xs) / (xs.len() - 1) as f64)
}

/// Sample standard deviation (n - 1 denominator, numpy's `std(ddof=1)`); `None` when
/// there are fewer than 2 values.
pub fn std_dev(xs: &[f64]) -> Option<f64> {
    variance(xs).map(f64::sqrt)
}

/// The standard Student t distribution with `df` degrees of freedom.
fn student(df: f64) -> Option<StudentsT> {
    StudentsT::new(0.0, 1.0, df).ok()
}

/// Two-sided p-value of a t statistic with `df` degrees of freedom. An infinite `t` (a
/// difference over no variance) gives 0.
pub(crate) fn t_two_sided_p(t: f64, df: f64) -> Option<f64> {
    if t.is_infinite() {
        return Some(0.0);
    }
    let p = 2.0 * student(df)?.sf(t.abs());
    finite(p.clamp(0.0, 1.0))
}

/// The quantile of the standard normal distribution that leaves `(1 - level) / 2` above it.
pub(crate) fn normal_critical(level: f64) -> Option<f64> {
    finite(Normal::standard().inverse_cdf(0.5 + level / 2.0))
}

/// Student-t confidence interval of the mean at `level` (e.g. 0.95): mean +- t(df = n - 1)
/// x s / sqrt(n), as scipy's `stats.t.interval(level, n - 1, loc=mean, scale=sem)`.
/// `None` when there are fewer than 2 values or `level` is not inside (0, 1); a sample with
/// no variance gives a zero-width interval at its mean.
pub fn t_interval(xs: &[f64], level: f64) -> Option<Interval> {
    if xs.len() < 2 || !valid_level(level) {
        return None;
    }
    let (m, s) = (mean(xs)?, std_dev(xs)?);
    let half = if s == 0.0 {
        0.0
    } else {
        let t = student((xs.len() - 1) as f64)?.inverse_cdf(0.5 + level / 2.0);
        finite(t * s / (xs.len() as f64).sqrt())?
    };
    Some(Interval { low: m - half, high: m + half, level })
}

/// Welch's unequal-variance t test, two-sided p-value (scipy's
/// `stats.ttest_ind(a, b, equal_var=False)`), with Welch-Satterthwaite degrees of freedom.
/// `None` when either side has fewer than 2 values, or both have zero variance (the
/// difference, if any, cannot be weighed: the caller says so).
pub fn welch_p(a: &[f64], b: &[f64]) -> Option<f64> {
    let (va, vb) = (variance(a)?, variance(b)?);
    if va == 0.0 && vb == 0.0 {
        return None;
    }
    let (ea, eb) = (va / a.len() as f64, vb / b.len() as f64);
    let se2 = ea + eb;
    let t = (mean(a)? - mean(b)?) / se2.sqrt();
    let df = se2 * se2 / (ea * ea / (a.len() - 1) as f64 + eb * eb / (b.len() - 1) as f64);
    t_two_sided_p(finite(t)?, finite(df)?)
}

/// Sum of the ranks of `a` within `a` and `b` pooled (ties take their average rank), and
/// the tie term sum(t^3 - t) over the groups of equal values.
fn rank_sum_and_ties(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mut pooled: Vec<(f64, bool)> = a.iter().map(|&x| (x, true)).chain(b.iter().map(|&x| (x, false))).collect();
    pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut rank_sum, mut tie_term, mut i) = (0.0, 0.0, 0);
    while i < pooled.len() {
        let j = i + pooled[i..].iter().take_while(|e| e.0 == pooled[i].0).count();
        let (ties, average_rank) = ((j - i) as f64, (i + 1 + j) as f64 / 2.0);
        rank_sum += average_rank * pooled[i..j].iter().filter(|e| e.1).count() as f64;
        tie_term += ties * ties * ties - ties;
        i = j;
    }
    (rank_sum, tie_term)
}

/// Mann-Whitney U test, two-sided p-value by the normal approximation with tie correction
/// and continuity correction: exactly scipy's `stats.mannwhitneyu(a, b,
/// alternative="two-sided", method="asymptotic")`. The exact distribution is not used, at
/// any size (statrs' exact method enumerates every split, too slow for the sample sizes of
/// a load test, and refuses ties). Ranking is O(n log n). `None` when either side has
/// fewer than 4 values; all values identical gives 1.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() < 4 || b.len() < 4 {
        return None;
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let n = n1 + n2;
    let (rank_sum, tie_term) = rank_sum_and_ties(a, b);
    let u1 = rank_sum - n1 * (n1 + 1.0) / 2.0;
    let u = u1.max(n1 * n2 - u1);
    let sigma2 = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if sigma2 <= 0.0 {
        return Some(1.0);
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / sigma2.sqrt();
    finite((2.0 * Normal::standard().sf(z)).clamp(0.0, 1.0))
}

/// A least-squares line `y = intercept + slope * x` with the Student-t test of its slope.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub slope: f64,
    pub intercept: f64,
    /// Standard error of the slope (0 for a perfect fit).
    pub slope_stderr: f64,
    /// Two-sided p-value of slope = 0 (n - 2 degrees of freedom).
    pub p_value: f64,
    pub n: usize,
}

impl Fit {
    /// Two-sided confidence interval of the slope at `level` (e.g. 0.95), as
    /// `slope +- t(n - 2) * stderr`.
    pub fn slope_interval(&self, level: f64) -> Option<Interval> {
        if !valid_level(level) {
            return None;
        }
        let half = if self.slope_stderr == 0.0 {
            0.0
        } else {
            finite(student((self.n - 2) as f64)?.inverse_cdf(0.5 + level / 2.0) * self.slope_stderr)?
        };
        Some(Interval { low: self.slope - half, high: self.slope + half, level })
    }
}

/// Ordinary least squares through the points (xs[i], ys[i]), as scipy's
/// `stats.linregress(xs, ys)`: slope, intercept, the slope's standard error and the
/// two-sided p-value of slope = 0. `None` with fewer than 3 points, slices of different
/// lengths, or all x equal. Constant ys give slope 0 and p = 1; a perfect fit p = 0.
pub fn ols_fit(xs: &[f64], ys: &[f64]) -> Option<Fit> {
    let n = ys.len();
    if n < 3 || xs.len() != n || is_constant(xs) {
        return None;
    }
    let (x_mean, y_mean) = (mean(xs)?, mean(ys)?);
    if is_constant(ys) {
        return Some(Fit { slope: 0.0, intercept: y_mean, slope_stderr: 0.0, p_value: 1.0, n });
    }
    let sxx: f64 = xs.iter().map(|x| (x - x_mean).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - x_mean) * (y - y_mean)).sum();
    let slope = finite(sxy / sxx)?;
    let intercept = y_mean - slope * x_mean;
    let ssr: f64 = xs.iter().zip(ys).map(|(x, y)| (y - intercept - slope * x).powi(2)).sum();
    if ssr == 0.0 {
        let p_value = if slope == 0.0 { 1.0 } else { 0.0 };
        return Some(Fit { slope, intercept, slope_stderr: 0.0, p_value, n });
    }
    let df = (n - 2) as f64;
    let slope_stderr = finite((ssr / df / sxx).sqrt())?;
    let p_value = t_two_sided_p(finite(slope / slope_stderr)?, df)?;
    Some(Fit { slope, intercept, slope_stderr, p_value, n })
}

/// Least-squares line through (i, ys[i]), i = 0, 1, 2, ...: the slope per index and the
/// two-sided p-value of slope = 0 (Student t, n - 2 degrees of freedom), as scipy's
/// `stats.linregress(range(n), ys)`. `None` when there are fewer than 3 values. A perfect
/// fit (no residual) gives p = 0 when the slope is not 0, and a constant series (0, 1).
pub fn ols_trend(ys: &[f64]) -> Option<(f64, f64)> {
    let xs: Vec<f64> = (0..ys.len()).map(|i| i as f64).collect();
    ols_fit(&xs, ys).map(|f| (f.slope, f.p_value))
}

/// The `p` quantile (0..=1) of sorted values by linear interpolation between closest ranks
/// (numpy's default `percentile` method, "linear"). `sorted` must not be empty.
fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    match sorted.get(lo + 1) {
        Some(&next) => sorted[lo] + (h - lo as f64) * (next - sorted[lo]),
        None => sorted[lo],
    }
}

/// Values outside Tukey's fences: below Q1 - 1.5 IQR or above Q3 + 1.5 IQR (`severe`
/// beyond 3 IQR), quartiles as numpy's `percentile(xs, [25, 75])` (linear interpolation).
/// Indexes into `xs`, in order. Empty when there are fewer than 4 values. When most values
/// are equal the IQR is 0 and any value different from them is severe.
pub fn iqr_anomalies(xs: &[f64]) -> Vec<Anomaly> {
    if xs.len() < 4 {
        return Vec::new();
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (q1, q3) = (quantile_sorted(&sorted, 0.25), quantile_sorted(&sorted, 0.75));
    let iqr = q3 - q1;
    let outside = |x: f64, k: f64| x < q1 - k * iqr || x > q3 + k * iqr;
    xs.iter()
        .enumerate()
        .filter(|&(_, &x)| outside(x, 1.5))
        .map(|(index, &value)| Anomaly { index, value, severe: outside(value, 3.0) })
        .collect()
}

/// Trailing moving average: element i is the mean of `xs[i + 1 - window ..= i]`, over
/// fewer values at the start (pandas' `rolling(window, min_periods=1).mean()`). Same length
/// as `xs`; a window of 0 counts as 1.
pub fn moving_average(xs: &[f64], window: usize) -> Vec<f64> {
    let window = window.max(1);
    let mut sum = 0.0;
    xs.iter()
        .enumerate()
        .map(|(i, &x)| {
            sum += x;
            if i >= window {
                sum -= xs[i - window];
            }
            sum / (i + 1).min(window) as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! Expected values from Python 3.11 with scipy 1.17.1, numpy 2.4.6 and pandas 3.1.1;
    //! each call and the value it printed are beside the assertion.
    use super::*;

    /// Asserts |got - want| <= rel x |want| (absolute `rel` when `want` is 0).
    #[track_caller]
    fn close(got: f64, want: f64, rel: f64) {
        let tol = if want == 0.0 { rel } else { rel * want.abs() };
        assert!((got - want).abs() <= tol, "got {got}, want {want} (rel {rel})");
    }

    const XS: [f64; 7] = [12.5, 13.1, 11.8, 14.2, 12.9, 13.6, 12.2];

    #[test]
    fn mean_and_std() {
        close(mean(&XS).unwrap(), 12.900000000000002, 1e-12); // np.mean(xs)
        close(std_dev(&XS).unwrap(), 0.8246211251235317, 1e-12); // np.std(xs, ddof=1)
        assert_eq!(mean(&[]), None);
        assert_eq!(std_dev(&[3.0]), None);
        assert_eq!(mean(&[0.1; 10]), Some(0.1));
        assert_eq!(std_dev(&[0.1; 10]), Some(0.0));
    }

    #[test]
    fn t_interval_matches_scipy() {
        // stats.t.interval(0.95, df=6, loc=np.mean(xs), scale=stats.sem(xs))
        //   = (12.137352658456262, 13.662647341543742)
        let ci = t_interval(&XS, 0.95).unwrap();
        close(ci.low, 12.137352658456262, 1e-9);
        close(ci.high, 13.662647341543742, 1e-9);
        assert_eq!(ci.level, 0.95);
        // stats.t.interval(0.99, ...) = (11.744478143703835, 14.055521856296169)
        let ci = t_interval(&XS, 0.99).unwrap();
        close(ci.low, 11.744478143703835, 1e-9);
        close(ci.high, 14.055521856296169, 1e-9);
        // stats.t.interval(0.9, df=1, loc=3.75, scale=stats.sem([3.0, 4.5]))
        //   = (-0.9853136360062829, 8.485313636006277)
        let ci = t_interval(&[3.0, 4.5], 0.9).unwrap();
        close(ci.low, -0.9853136360062829, 1e-9);
        close(ci.high, 8.485313636006277, 1e-9);
    }

    #[test]
    fn t_interval_edges() {
        assert_eq!(t_interval(&[1.0], 0.95), None);
        assert_eq!(t_interval(&XS, 1.0), None);
        assert_eq!(t_interval(&XS, f64::NAN), None);
        let ci = t_interval(&[0.1; 5], 0.95).unwrap();
        assert_eq!((ci.low, ci.high), (0.1, 0.1));
    }

    #[test]
    fn welch_matches_scipy() {
        let a = [10.2, 11.5, 9.8, 10.9, 11.1];
        let b = [12.3, 12.9, 11.8, 13.4, 12.6, 13.0];
        // stats.ttest_ind(a, b, equal_var=False).pvalue = 0.001001721992512178
        close(welch_p(&a, &b).unwrap(), 0.001001721992512178, 1e-9);
        // stats.ttest_ind([5.0, 5.0, 5.0], [5.5, 6.1, 5.8], equal_var=False).pvalue = 0.043817112532485054
        close(welch_p(&[5.0, 5.0, 5.0], &[5.5, 6.1, 5.8]).unwrap(), 0.043817112532485054, 1e-9);
        let (a, b) = ([100.0, 101.0, 99.5, 100.5], [100.2, 100.9, 99.7, 100.4, 100.1]);
        // stats.ttest_ind(a, b, equal_var=False).pvalue = 0.9798884656840682
        close(welch_p(&a, &b).unwrap(), 0.9798884656840682, 1e-9);
        assert_eq!(welch_p(&[1.0], &b), None);
        assert_eq!(welch_p(&[2.0, 2.0], &[3.0, 3.0, 3.0]), None);
    }

    #[test]
    fn mann_whitney_with_ties_matches_scipy() {
        let (a, b) = ([1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0], [3.0, 4.0, 4.0, 5.0, 6.0, 6.0, 7.0, 8.0]);
        // stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
        //   = 0.02228731901455301 (U = 8.0), and the same with the samples swapped
        close(mann_whitney_p(&a, &b).unwrap(), 0.02228731901455301, 1e-9);
        close(mann_whitney_p(&b, &a).unwrap(), 0.02228731901455301, 1e-9);
    }

    #[test]
    fn mann_whitney_without_ties_matches_scipy_and_statrs() {
        let c = [50.17, 56.8, 56.12, 47.45, 48.51, 47.36, 52.85, 49.72, 53.73, 40.76, 57.83, 49.52];
        let d = [57.4, 53.32, 52.1, 56.32, 58.12, 52.99, 53.24, 57.43, 49.65, 46.43, 55.97, 50.65, 44.4, 49.93, 51.66];
        // stats.mannwhitneyu(c, d, alternative="two-sided", method="asymptotic").pvalue = 0.31716652052312344
        let p = mann_whitney_p(&c, &d).unwrap();
        close(p, 0.31716652052312344, 1e-9);
        use statrs::stats_tests::{mannwhitneyu::*, Alternative};
        let method = MannWhitneyUMethod::AsymptoticInclContinuityCorrection;
        let (_, statrs_p) = mannwhitneyu(&c, &d, method, Alternative::TwoSided).unwrap();
        close(p, statrs_p, 1e-12);
    }

    #[test]
    fn mann_whitney_edges() {
        // stats.mannwhitneyu([1,2,3,4], [1,2,3,4], alternative="two-sided", method="asymptotic").pvalue = 1.0
        assert_eq!(mann_whitney_p(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 3.0, 4.0]), Some(1.0));
        assert_eq!(mann_whitney_p(&[7.0; 5], &[7.0; 6]), Some(1.0));
        assert_eq!(mann_whitney_p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0, 7.0]), None);
    }

    #[test]
    fn ols_trend_matches_linregress() {
        let ys = [
            22.449, 17.283, 21.202, 20.369, 20.857, 21.491, 19.676, 22.172, 21.762, 27.138, 23.771, 23.427, 23.862,
            23.748, 23.634,
        ];
        // stats.linregress(np.arange(15), ys): slope = 0.33835357142857136, pvalue = 0.0071145485476346425
        let (slope, p) = ols_trend(&ys).unwrap();
        close(slope, 0.33835357142857136, 1e-9);
        close(p, 0.0071145485476346425, 1e-9);
        let flat = [5.0, 5.2, 4.9, 5.1, 5.0, 4.8, 5.1, 5.0];
        // stats.linregress(np.arange(8), flat): slope = -0.010714285714285761, pvalue = 0.6167160890709146
        let (slope, p) = ols_trend(&flat).unwrap();
        close(slope, -0.010714285714285761, 1e-9);
        close(p, 0.6167160890709146, 1e-9);
    }

    #[test]
    fn ols_fit_matches_linregress() {
        // r = stats.linregress([0, 1.5, 2, 4, 7.5], [10, 12.5, 12, 15, 21])
        //   slope 1.4552238805970148, intercept 9.734328358208955, stderr 0.11187394384928673,
        //   pvalue 0.000981079573414703 (scipy 1.17.1); stats.t.ppf(0.975, 3) = 3.1824463052837078
        let f = ols_fit(&[0.0, 1.5, 2.0, 4.0, 7.5], &[10.0, 12.5, 12.0, 15.0, 21.0]).unwrap();
        close(f.slope, 1.4552238805970148, 1e-9);
        close(f.intercept, 9.734328358208955, 1e-9);
        close(f.slope_stderr, 0.11187394384928673, 1e-9);
        close(f.p_value, 0.000981079573414703, 1e-9);
        let ci = f.slope_interval(0.95).unwrap();
        close(ci.low, 1.4552238805970148 - 3.1824463052837078 * 0.11187394384928673, 1e-9);
        close(ci.high, 1.4552238805970148 + 3.1824463052837078 * 0.11187394384928673, 1e-9);
        assert_eq!(ols_fit(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None, "all x equal");
        assert_eq!(ols_fit(&[1.0, 2.0], &[1.0, 2.0]), None, "two points");
        assert_eq!(ols_fit(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]).unwrap().slope, 0.0);
    }

    #[test]
    fn ols_trend_edges() {
        assert_eq!(ols_trend(&[1.0, 2.0]), None);
        assert_eq!(ols_trend(&[0.1; 12]), Some((0.0, 1.0)));
        assert_eq!(ols_trend(&[1.0, 3.0, 5.0, 7.0]), Some((2.0, 0.0)));
        let (slope, p) = ols_trend(&[0.1, 0.2, 0.3, 0.4, 0.5]).unwrap();
        close(slope, 0.1, 1e-12);
        assert!(p < 1e-12, "{p}");
    }

    #[test]
    fn iqr_matches_numpy_percentile() {
        let q = [10.0, 11.0, 10.5, 10.8, 11.2, 10.9, 30.0, 10.7, 2.0, 10.6, 16.0, 11.1, 10.4, 12.5, 9.2];
        let mut sorted = q.to_vec();
        sorted.sort_by(f64::total_cmp);
        // np.percentile(q, [25, 75]) = [10.45, 11.149999999999999]
        close(quantile_sorted(&sorted, 0.25), 10.45, 1e-12);
        close(quantile_sorted(&sorted, 0.75), 11.149999999999999, 1e-12);
        // np.percentile([1, 2, 3, 4, 5, 6], [25, 75]) = [2.25, 4.75]
        close(quantile_sorted(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 0.25), 2.25, 1e-12);
        close(quantile_sorted(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 0.75), 4.75, 1e-12);
        // fences: mild (9.4, 12.2), severe (8.35, 13.25); outside them in numpy:
        // 6 (30.0) severe, 8 (2.0) severe, 10 (16.0) severe, 13 (12.5) mild, 14 (9.2) mild
        let found: Vec<(usize, bool)> = iqr_anomalies(&q).iter().map(|a| (a.index, a.severe)).collect();
        assert_eq!(found, [(6, true), (8, true), (10, true), (13, false), (14, false)]);
        assert_eq!(iqr_anomalies(&q)[0].value, 30.0);
    }

    #[test]
    fn iqr_edges() {
        assert!(iqr_anomalies(&[1.0, 100.0, 1.0]).is_empty());
        assert!(iqr_anomalies(&[4.0; 20]).is_empty());
        assert!(iqr_anomalies(&[]).is_empty());
    }

    #[test]
    fn moving_average_matches_pandas() {
        let xs = [3.0, 5.0, 4.0, 8.0, 6.0, 7.0, 9.0, 2.0];
        // pd.Series(xs).rolling(3, min_periods=1).mean()
        let want = [3.0, 4.0, 4.0, 5.666666666666667, 6.0, 7.0, 7.333333333333333, 6.0];
        for (got, want) in moving_average(&xs, 3).into_iter().zip(want) {
            close(got, want, 1e-12);
        }
        assert_eq!(moving_average(&xs, 0), xs);
        assert_eq!(moving_average(&xs, 100).last(), Some(&5.5));
        assert!(moving_average(&[], 3).is_empty());
    }
}
