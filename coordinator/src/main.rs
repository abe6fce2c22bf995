//! `mailhaul`: the coordinator's command line. All logic lives in the library.

fn main() -> std::process::ExitCode {
    // Logs to stderr; traces over OTLP when OTEL_EXPORTER_OTLP_*ENDPOINT is set.
    let telemetry = match mailhaul_bus::trace::init("mailhaul-coordinator", "warn") {
        Ok(t) => t,
        Err(err) => {
            eprintln!("error: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = mailhaul_coordinator::cli::main();
    // The command's runtime is gone: export the spans still buffered (blocks).
    telemetry.shutdown();
    code
}
