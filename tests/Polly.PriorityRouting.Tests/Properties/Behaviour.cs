using System.Globalization;
using System.Net;
using Polly.PriorityRouting.Tests.Support;
using Polly.Timeout;

namespace Polly.PriorityRouting.Tests.Properties;

internal enum BehaviourKind
{
    /// <summary>200.</summary>
    Ok,

    /// <summary>200 with a spent budget: <c>x-ratelimit-remaining-*: 0</c> and a reset (proactive throttling).</summary>
    Spent,

    /// <summary>429 with <c>retry-after-ms</c>.</summary>
    Throttle,

    /// <summary>429 without any throttle signal.</summary>
    ThrottleWithoutSignal,

    /// <summary>503 with <c>Retry-After</c> in seconds: a throttle signal on a server error.</summary>
    UnavailableRetryAfter,

    /// <summary>500, or 503 without any throttle signal.</summary>
    ServerError,

    /// <summary>The connection is reset: <see cref="HttpRequestException"/>.</summary>
    TransportError,

    /// <summary>The attempt times out: a cancellation the caller did not ask for.</summary>
    Timeout,

    /// <summary>408: a timeout reported by the backend.</summary>
    RequestTimeout,

    /// <summary>400.</summary>
    BadRequest,
}

/// <summary>What one backend does with one request: an answer or a failure, after an optional delay on the fake clock.</summary>
/// <param name="Kind">The kind of answer.</param>
/// <param name="Milliseconds">The delay a throttle asks for, or the reset of a spent budget.</param>
/// <param name="Variant">
/// For <see cref="BehaviourKind.Spent"/>: the tokens budget is spent, else the requests budget. For
/// <see cref="BehaviourKind.ServerError"/>: 503 instead of 500. For <see cref="BehaviourKind.Timeout"/>: Polly's
/// <see cref="TimeoutRejectedException"/> (an attempt timeout inside the routing) instead of a bare cancellation.
/// </param>
/// <param name="Delay">How long the backend takes to answer (the fake clock moves by that much).</param>
internal sealed record Behaviour(BehaviourKind Kind, int Milliseconds, bool Variant, TimeSpan Delay)
{
    public int Status => Kind switch
    {
        BehaviourKind.Ok or BehaviourKind.Spent => 200,
        BehaviourKind.Throttle or BehaviourKind.ThrottleWithoutSignal => 429,
        BehaviourKind.UnavailableRetryAfter => 503,
        BehaviourKind.ServerError => Variant ? 503 : 500,
        BehaviourKind.RequestTimeout => 408,
        BehaviourKind.BadRequest => 400,
        _ => 0,
    };

    /// <summary>Why a failing backend is out, as the documentation names it.</summary>
    public BackendUnavailableReason Reason => Kind switch
    {
        BehaviourKind.ServerError => BackendUnavailableReason.ServerError,
        BehaviourKind.TransportError => BackendUnavailableReason.TransportError,
        BehaviourKind.Timeout or BehaviourKind.RequestTimeout => BackendUnavailableReason.Timeout,
        _ => BackendUnavailableReason.Throttled,
    };

    /// <summary>The reset of a spent budget as OpenAI writes it: <c>2s</c>, <c>2</c> or <c>1500ms</c>.</summary>
    private string Reset => Milliseconds % 1000 != 0
        ? $"{Milliseconds.ToString(CultureInfo.InvariantCulture)}ms"
        : (Milliseconds / 1000).ToString(CultureInfo.InvariantCulture) + (Variant ? "s" : string.Empty);

    private string Budget => Variant ? "tokens" : "requests";

    /// <summary>Builds the answer, or throws the failure.</summary>
    public HttpResponseMessage Answer(string body)
    {
        switch (Kind)
        {
            case BehaviourKind.TransportError:
                throw new HttpRequestException("connection reset");
            case BehaviourKind.Timeout when Variant:
                throw new TimeoutRejectedException("attempt timed out");
            case BehaviourKind.Timeout:
                throw new TaskCanceledException("attempt timed out");
        }

        var response = new HttpResponseMessage((HttpStatusCode)Status) { Content = new DisposeTrackingContent(body) };
        switch (Kind)
        {
            case BehaviourKind.Spent:
                response.Headers.TryAddWithoutValidation($"x-ratelimit-remaining-{Budget}", "0");
                response.Headers.TryAddWithoutValidation($"x-ratelimit-reset-{Budget}", Reset);
                break;
            case BehaviourKind.Throttle:
                response.Headers.TryAddWithoutValidation("retry-after-ms", Milliseconds.ToString(CultureInfo.InvariantCulture));
                break;
            case BehaviourKind.UnavailableRetryAfter:
                response.Headers.TryAddWithoutValidation("Retry-After", (Milliseconds / 1000).ToString(CultureInfo.InvariantCulture));
                break;
        }

        return response;
    }

    public override string ToString()
    {
        var what = Kind switch
        {
            BehaviourKind.Spent => $"200 {Budget} spent, reset {Reset}",
            BehaviourKind.Throttle => $"429 retry-after-ms:{Milliseconds.ToString(CultureInfo.InvariantCulture)}",
            BehaviourKind.UnavailableRetryAfter => $"503 Retry-After:{(Milliseconds / 1000).ToString(CultureInfo.InvariantCulture)}",
            BehaviourKind.TransportError => "reset",
            BehaviourKind.Timeout => Variant ? "timeout (Polly)" : "timeout",
            _ => Status.ToString(CultureInfo.InvariantCulture),
        };
        return Delay == TimeSpan.Zero ? what : $"{what} after {RoutingModel.Show(Delay)[1..]}";
    }
}
