//! Trace context across the queue (feature `otel`): the receiving
//! request's W3C trace context is stored with the event, and the worker's
//! span continues it — the first attempt as a child of the receive span,
//! later attempts as new traces linked to it (the OpenTelemetry messaging
//! conventions). An unsampled inbound trace stays unsampled: every attempt
//! is its child.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `span`'s trace context as stored: `traceparent`, and `tracestate` on a
/// second line when there is one; `None` outside any trace.
pub(crate) fn capture(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return None;
    }
    let parent = format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    );
    let state = sc.trace_state().header();
    Some(if state.is_empty() {
        parent
    } else {
        format!("{parent}\n{state}")
    })
}

/// The stored context, as a remote span context (`None`: unreadable).
pub(crate) fn parse(stored: &str) -> Option<SpanContext> {
    let (parent, state) = stored.split_once('\n').unwrap_or((stored, ""));
    let mut parts = parent.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || trace.len() != 32 || span.len() != 16 {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let state = state.parse::<TraceState>().unwrap_or_default();
    let sc = SpanContext::new(trace, span, TraceFlags::new(flags), true, state);
    sc.is_valid().then_some(sc)
}

/// Makes `span` (an attempt's) continue the stored context: its child on
/// the first attempt (and on every attempt of an unsampled trace), a new
/// trace linked to it on a retry.
pub(crate) fn continue_in(span: &tracing::Span, stored: Option<&str>, attempt: u32) {
    let Some(sc) = stored.and_then(parse) else {
        return;
    };
    if attempt <= 1 || !sc.is_sampled() {
        let cx = opentelemetry::Context::new().with_remote_span_context(sc);
        let _ = span.set_parent(cx);
    } else {
        span.add_link(sc);
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_what_it_writes_and_refuses_the_rest() {
        let sc =
            parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=x").unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(sc.trace_state().get("vendor"), Some("x"));
        assert!(
            !parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .unwrap()
                .is_sampled()
        );
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-zz-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
