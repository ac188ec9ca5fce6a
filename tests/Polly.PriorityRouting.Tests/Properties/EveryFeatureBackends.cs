using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.Time.Testing;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>
/// The backends' side of <see cref="EveryFeatureProperties"/>, in memory: each call is shown to the model first (which
/// checks the choice), then answered with the behaviour its request scripted for that backend. A backend that keeps a
/// token budget behaves like Azure's: a budget per deployment refilled in fixed windows, a 429 until the window ends for
/// a request that does not fit, and <c>x-ratelimit-remaining/limit/reset-tokens</c> on every answer it admits.
/// </summary>
internal sealed class EveryFeatureBackends : HttpMessageHandler
{
    public const string RequestIdHeader = "x-model-request";
    public const string CostHeader = "x-model-cost";

    private readonly EveryFeatureSetup _setup;
    private readonly FakeTimeProvider _time;
    private readonly EveryFeatureModel _model;
    private readonly DateTimeOffset _start;
    private readonly Dictionary<(string Backend, string? Partition), long> _consumed = [];
    private readonly Dictionary<(string Backend, string? Partition), long> _windowOf = [];
    private int _created;

    public EveryFeatureBackends(EveryFeatureSetup setup, FakeTimeProvider time, EveryFeatureModel model)
    {
        _setup = setup;
        _time = time;
        _model = model;
        _start = time.GetUtcNow();
    }

    public System.Collections.Concurrent.ConcurrentDictionary<int, LiveRequest> Live { get; } = new();

    /// <summary>Gets or sets the clock step, which tells the rounds of an execution apart (a wait ends in a later step).</summary>
    public Func<int> Round { get; set; } = () => 0;

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
        => Answer(request, cancellationToken);

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        => Task.FromResult(Answer(request, cancellationToken));

    /// <summary>Answers under the model's lock: a request released from a wait may run on another thread.</summary>
    private HttpResponseMessage Answer(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        lock (_model)
        {
            return AnswerLocked(request, cancellationToken);
        }
    }

    private HttpResponseMessage AnswerLocked(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var live = Live[int.Parse(request.Headers.GetValues(RequestIdHeader).Single(), CultureInfo.InvariantCulture)];
        var name = request.RequestUri!.Host;
        var index = Array.FindIndex(_setup.Backends, b => b.Name == name);
        var backend = _setup.Backends[index];
        var now = _time.GetUtcNow();

        _model.OnCall(live, name, Round(), now);
        if (live.Cancelled)
        {
            _model.Violations.Add(new Violation(Rule.Waits, $"{_model.Show(now)} request #{live.Id}: a caller that cancelled still reached {name}"));
        }

        if (!request.Headers.TryGetValues("api-key", out var keys) || keys.Single() != backend.ApiKey)
        {
            _model.Violations.Add(new Violation(Rule.Answers, $"{_model.Show(now)} request #{live.Id}: {name} did not receive its own api-key"));
        }

        var act = live.Acts[index];
        if (live.Shape is not (Shape.Chat or Shape.ChatWithFile) && act.Kind == ActKind.Aborted)
        {
            act = act with { Kind = ActKind.Ok };
        }

        switch (act.Kind)
        {
            case ActKind.TransportError:
                _model.OnAnswer(live, name, new BackendAnswer(AnswerKind.Failed, TimeSpan.Zero, null, false), now);
                throw new HttpRequestException("connection reset");

            case ActKind.ServerError:
                _model.OnAnswer(live, name, new BackendAnswer(AnswerKind.Failed, TimeSpan.Zero, null, false), now);
                return Keep(live, name, new HttpResponseMessage(act.Milliseconds == 0 ? HttpStatusCode.InternalServerError : HttpStatusCode.ServiceUnavailable) { Content = new FakeBody("{}", abort: false) });

            case ActKind.Throttle:
                return Throttled(live, name, TimeSpan.FromMilliseconds(act.Milliseconds), fromBudget: false, now);

            case ActKind.BadRequest:
                _model.OnAnswer(live, name, new BackendAnswer(AnswerKind.Returned, TimeSpan.Zero, null, false), now);
                return Keep(live, name, new HttpResponseMessage(HttpStatusCode.BadRequest) { Content = new FakeBody($"{name}#{live.Id}:bad", abort: false) });
        }

        BudgetReport? report = null;
        if (backend.ReportsBudget)
        {
            var key = (name, live.Partition);
            var window = (now - _start).Ticks / backend.Window.Ticks;
            if (!_windowOf.TryGetValue(key, out var current) || current != window)
            {
                _windowOf[key] = window;
                _consumed[key] = 0;
            }

            var windowEnd = _start + TimeSpan.FromTicks((window + 1) * backend.Window.Ticks);
            var left = backend.Limit - _consumed[key];
            if (live.Spec.Cost > left)
            {
                return Throttled(live, name, windowEnd - now, fromBudget: true, now);
            }

            _consumed[key] += live.Spec.Cost;
            report = new BudgetReport(left - live.Spec.Cost, backend.Limit, windowEnd - now);
        }

        string body;
        live.CreatedId = null;
        if (live.Shape == Shape.Upload)
        {
            live.CreatedId = $"file-{name}x{(++_created).ToString(CultureInfo.InvariantCulture)}";
            body = $$"""{"object":"file","id":"{{live.CreatedId}}","purpose":"batch","note":"{{name}}#{{live.Id}}"}""";
        }
        else if (live.Shape is Shape.Create or Shape.FollowUp)
        {
            live.CreatedId = $"resp_{name}x{(++_created).ToString(CultureInfo.InvariantCulture)}";
            body = $$"""{"id":"{{live.CreatedId}}","object":"response","status":"completed","output":[],"note":"{{name}}#{{live.Id}}"}""";
        }
        else
        {
            body = $$"""{"id":"chatcmpl-{{live.Id}}","object":"chat.completion","choices":[],"note":"{{name}}#{{live.Id}}"}""";
        }

        _model.OnAnswer(live, name, new BackendAnswer(AnswerKind.Returned, TimeSpan.Zero, report, false), now);
        var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new FakeBody(body, abort: act.Kind == ActKind.Aborted) };
        if (report is not null)
        {
            response.Headers.TryAddWithoutValidation("x-ratelimit-remaining-tokens", report.Remaining.ToString(CultureInfo.InvariantCulture));
            response.Headers.TryAddWithoutValidation("x-ratelimit-limit-tokens", report.Limit.ToString(CultureInfo.InvariantCulture));
            response.Headers.TryAddWithoutValidation("x-ratelimit-reset-tokens", ((long)report.Reset.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) + "ms");
        }

        return Keep(live, name, response);
    }

    private HttpResponseMessage Throttled(LiveRequest live, string name, TimeSpan after, bool fromBudget, DateTimeOffset now)
    {
        _model.OnAnswer(live, name, new BackendAnswer(AnswerKind.Throttled, after, null, fromBudget), now);
        var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Content = new FakeBody("{}", abort: false) };
        response.Headers.TryAddWithoutValidation("retry-after-ms", ((long)after.TotalMilliseconds).ToString(CultureInfo.InvariantCulture));
        return Keep(live, name, response);
    }

    private static HttpResponseMessage Keep(LiveRequest live, string name, HttpResponseMessage response)
    {
        live.Responses.Add((name, response, (FakeBody)response.Content!));
        return response;
    }

    /// <summary>A body that knows whether it was disposed, and may break half-way as an aborted stream does.</summary>
    internal sealed class FakeBody(string text, bool abort) : HttpContent
    {
        private readonly byte[] _bytes = Encoding.UTF8.GetBytes(text);

        public bool IsDisposed { get; private set; }

        public string Text { get; } = text;

        public bool Aborts { get; } = abort;

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
            => SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            await using var source = new BreakingStream(_bytes, Aborts);
            await source.CopyToAsync(stream, cancellationToken);
        }

        protected override void SerializeToStream(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            using var source = new BreakingStream(_bytes, Aborts);
            source.CopyTo(stream);
        }

        protected override Task<Stream> CreateContentReadStreamAsync() => Task.FromResult<Stream>(new BreakingStream(_bytes, Aborts));

        protected override Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) => CreateContentReadStreamAsync();

        protected override Stream CreateContentReadStream(CancellationToken cancellationToken) => new BreakingStream(_bytes, Aborts);

        protected override bool TryComputeLength(out long length)
        {
            length = _bytes.Length;
            return !Aborts;
        }

        protected override void Dispose(bool disposing)
        {
            IsDisposed = true;
            base.Dispose(disposing);
        }
    }

    /// <summary>Gives the body; when it aborts, the first half and then the transport's exception.</summary>
    private sealed class BreakingStream(byte[] bytes, bool abort) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var end = abort ? bytes.Length / 2 : bytes.Length;
            if (_position >= end)
            {
                return abort && buffer.Length > 0 ? throw new IOException("The response ended prematurely (connection reset).") : 0;
            }

            var count = Math.Min(buffer.Length, end - _position);
            bytes.AsSpan(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            => ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
