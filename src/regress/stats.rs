//! Statistics on samples: mean, standard deviation, Student-t intervals, Welch's t,
//! Mann-Whitney U, least-squares trend, IQR fences, moving averages.
