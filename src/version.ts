/** The version `fluctuat --version`, `INFO` and `help` report. */
export const VERSION = '0.1.0';
