//! Time-series methods over a metric's history: ARIMA(1,1,0) one-step forecast and
//! E-divisive change points.
