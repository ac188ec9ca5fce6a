using System.Globalization;
using System.Text;
using Polly.PriorityRouting;

namespace PriorityRouting.Simulation;

/// <summary>
/// The request bodies of a run, drawn once from the seed: chat completions whose prompt text is 4 UTF-8 bytes per token
/// (so that the prompt's true size is known) and whose cost, as the backend admits it, is prompt plus <c>max_tokens</c>.
/// Every logical request's body is its own, as real prompts are: it names its end user (OpenAI's <c>user</c> field,
/// <c>user-&lt;sequence&gt;</c>), kept by its retries. Uniform requests cost 1 (one request of a request budget) and have no body.
/// </summary>
internal sealed class SimulatedRequests
{
    public const string CostHeader = "x-simulated-cost";

    /// <summary>
    /// The request's place in the scenario's arrival stream (0, 1, 2, …), kept by its retries: what its completion time
    /// is drawn from (see <see cref="CompletionTimes.For"/>).
    /// </summary>
    public const string SequenceHeader = "x-simulated-request";

    /// <summary>On an answer whose completion goes on after its headers (streamed): how long until its last token.</summary>
    public const string RemainingMillisecondsHeader = "x-simulated-remaining-ms";

    /// <summary>
    /// On every success: when the backend admitted the request (UTC ticks of the virtual clock), which is when it counted
    /// its tokens; the served share counts an answer by this moment, not by when it arrived.
    /// </summary>
    public const string AdmittedAtHeader = "x-simulated-admitted-at";

    private const int PoolSize = 256;
    private static readonly PriorityRoutingHints BackgroundHints = new() { Background = true };
    private static readonly int[] OutputCaps = [256, 512, 1024, 1024, 2048, 4096];

    private readonly byte[][] _bodies;
    private readonly long[] _costs;

    public SimulatedRequests(SimulationScenario scenario, int seed)
    {
        if (!scenario.MixedSizes)
        {
            _bodies = [[]];
            _costs = [1];
            return;
        }

        var random = new Random(seed);
        _bodies = new byte[PoolSize][];
        _costs = new long[PoolSize];
        for (var i = 0; i < PoolSize; i++)
        {
            // Prompts log-uniform over 200..8,000 tokens; the "user" role string counts one token of them.
            var prompt = (int)Math.Round(200 * Math.Pow(40, random.NextDouble()));
            var cap = OutputCaps[random.Next(OutputCaps.Length)];
            // Without its closing brace: each request's user is appended (see Create).
            var body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', (prompt - 1) * 4) +
                       "\"}],\"max_tokens\":" + cap.ToString(CultureInfo.InvariantCulture);
            _bodies[i] = Encoding.UTF8.GetBytes(body);
            _costs[i] = prompt + cap;
        }
    }

    public int Count => _bodies.Length;

    public double MeanCost => _costs.Average();

    public long CostOf(int index) => _costs[index];

    /// <summary>Returns the cost a request carries (prompt plus <c>max_tokens</c>, or 1), as the backend admits it.</summary>
    public static long CostOf(HttpRequestMessage request)
        => request.Headers.NonValidated.TryGetValues(CostHeader, out var values) &&
           long.TryParse(values.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var cost)
            ? cost
            : 1;

    /// <summary>Returns the request's place in the arrival stream; 0 for one that carries none.</summary>
    public static long SequenceOf(HttpRequestMessage request)
        => request.Headers.NonValidated.TryGetValues(SequenceHeader, out var values) &&
           long.TryParse(values.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var sequence)
            ? sequence
            : 0;

    /// <summary>Returns when the backend admitted the request a success answers, or <see langword="null"/> when it does not say.</summary>
    public static DateTimeOffset? AdmittedAt(HttpResponseMessage response)
        => response.Headers.NonValidated.TryGetValues(AdmittedAtHeader, out var values) &&
           long.TryParse(values.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var ticks)
            ? new DateTimeOffset(ticks, TimeSpan.Zero)
            : null;

    /// <summary>Returns the body (drawn without its closing brace) with the request's own <c>user</c>, closed.</summary>
    private static byte[] WithUser(byte[] unclosed, long sequence)
    {
        var user = Encoding.UTF8.GetBytes(",\"user\":\"user-" + sequence.ToString(CultureInfo.InvariantCulture) + "\"}");
        var body = new byte[unclosed.Length + user.Length];
        unclosed.CopyTo(body, 0);
        user.CopyTo(body, unclosed.Length);
        return body;
    }

    public HttpRequestMessage Create(Uri address, int index, bool background = false, long sequence = 0)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, address);
        if (_bodies[index].Length > 0)
        {
            request.Content = new ByteArrayContent(WithUser(_bodies[index], sequence));
            request.Content.Headers.ContentType = new("application/json");
        }

        request.Headers.TryAddWithoutValidation(CostHeader, _costs[index].ToString(CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation(SequenceHeader, sequence.ToString(CultureInfo.InvariantCulture));
        if (background)
        {
            // Background work (the classes scenario), as an app marks it for the library; the other routers ignore it.
            request.Options.Set(PriorityRoutingRequestOptions.Hints, BackgroundHints);
        }

        return request;
    }
}
