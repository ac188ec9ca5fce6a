using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Streaming;

public sealed class ResponseBodyWatcherTests : IDisposable
{
    private static readonly TimeSpan FirstByteTimeout = TimeSpan.FromMilliseconds(500);

    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();

    public void Dispose() => _services.Dispose();

    [Fact]
    public async Task Headers_without_a_first_byte_fail_over_at_the_first_byte_timeout_and_mark_the_backend()
    {
        var stalled = new ScriptedBodyStream();
        using var h = Harness(o => o.FirstByteTimeout = FirstByteTimeout);
        h.Transport.Respond("a", _ => Sse(stalled)).Respond("b", _ => Sse(new ScriptedBodyStream().Send("data: b\n\n").End()));

        var sending = Send(h);
        await stalled.WhenReading();
        h.Time.Advance(TimeSpan.FromMilliseconds(499));
        sending.IsCompleted.Should().BeFalse();
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        using var response = await sending;

        (await response.Content.ReadAsStringAsync()).Should().Be("data: b\n\n");
        h.Transport.Hosts.Should().Equal("a", "b");
        h.StateOf("a").Should().Be(new BackendUnavailability(h.Time.GetUtcNow() + TimeSpan.FromSeconds(10), BackendUnavailableReason.Timeout));
        stalled.IsDisposed.Should().BeTrue("the discarded response gives its connection back");
    }

    [Fact]
    public async Task The_bytes_read_ahead_reach_the_caller_first_and_the_rest_streams_with_the_content_headers()
    {
        const string First = "data: {\"delta\":\"first\"}\n\n";
        var body = new ScriptedBodyStream().Send(First);
        using var h = Harness(o => o.FirstByteTimeout = FirstByteTimeout);
        h.Transport.Respond("a", _ =>
        {
            var response = Sse(body);
            response.Content.Headers.ContentLanguage.Add("en");
            return response;
        });

        using var response = await Send(h);
        response.Content.Headers.ContentType!.MediaType.Should().Be("text/event-stream");
        response.Content.Headers.ContentLanguage.Should().Equal("en");
        response.Content.Headers.ContentLength.Should().BeNull();
        var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64];
        var first = await ReadExactlyAsync(stream, First.Length);
        first.Should().Be(First, "the bytes read ahead come first, then the rest of the chunk");

        var next = stream.ReadAsync(buffer).AsTask();
        await body.WhenReading();
        next.IsCompleted.Should().BeFalse("the body is streamed, not buffered");
        body.Send("data: [DONE]\n\n").End();
        var count = await next;

        System.Text.Encoding.UTF8.GetString(buffer, 0, count).Should().Be("data: [DONE]\n\n");
        (await stream.ReadAsync(buffer)).Should().Be(0);
    }

    [Fact]
    public async Task The_caller_cancelling_during_the_wait_stops_at_once_and_never_marks_the_backend()
    {
        var stalled = new ScriptedBodyStream();
        using var h = Harness(o => o.FirstByteTimeout = FirstByteTimeout);
        h.Transport.Respond("a", _ => Sse(stalled));
        using var cts = new CancellationTokenSource();

        var sending = Send(h, cts.Token);
        await stalled.WhenReading();
        cts.Cancel();

        await sending.Invoking(s => s).Should().ThrowAsync<OperationCanceledException>();
        h.Transport.Hosts.Should().Equal("a");
        h.StateOf("a").Should().BeNull();
        stalled.IsDisposed.Should().BeTrue();
    }

    [Fact]
    public async Task A_transport_error_before_the_first_byte_fails_over_as_a_transport_error()
    {
        using var h = Harness(o => o.FirstByteTimeout = FirstByteTimeout);
        h.Transport
            .Respond("a", _ => Sse(new ScriptedBodyStream().Fail(new IOException("connection reset"))))
            .Respond("b", _ => Sse(new ScriptedBodyStream().Send("ok").End()));

        using var response = await Send(h);

        (await response.Content.ReadAsStringAsync()).Should().Be("ok");
        h.StateOf("a").Should().Be(new BackendUnavailability(h.Time.GetUtcNow() + TimeSpan.FromSeconds(10), BackendUnavailableReason.TransportError));
    }

    public static TheoryData<string> EmptyBodies => ["HEAD", "204", "Content-Length: 0"];

    [Theory]
    [MemberData(nameof(EmptyBodies))]
    public async Task Bodies_known_to_be_empty_never_wait_for_a_byte(string kind)
    {
        var body = new ScriptedBodyStream();
        using var h = Harness(o => o.FirstByteTimeout = FirstByteTimeout);
        h.Transport.Respond("a", _ =>
        {
            var response = Sse(body);
            if (kind == "204")
            {
                response.StatusCode = HttpStatusCode.NoContent;
            }
            else if (kind != "HEAD")
            {
                response.Content.Headers.ContentLength = 0;
            }

            return response;
        });

        using var response = await h.Client.SendAsync(
            new HttpRequestMessage(kind == "HEAD" ? HttpMethod.Head : HttpMethod.Get, "/"), HttpCompletionOption.ResponseHeadersRead);

        body.Reads.Should().Be(0);
        response.Content.Should().BeSameAs(h.Transport.Responses.Single().Content, "nothing was read, nothing is wrapped");
    }

    [Fact]
    public async Task With_the_defaults_aborted_bodies_count_and_five_in_a_row_eject_the_backend()
    {
        using var h = Harness(null);

        await AbortedBodies(h, 4);
        h.StateOf("a").Should().BeNull("four failures in a row are one short of the default five");
        await AbortedBodies(h, 1);

        h.StateOf("a").Should().Be(new BackendUnavailability(h.Time.GetUtcNow() + TimeSpan.FromSeconds(30), BackendUnavailableReason.Ejected));
    }

    [Fact]
    public async Task With_the_defaults_nothing_is_read_ahead_and_the_body_streams_with_the_backends_content_headers()
    {
        var body = new ScriptedBodyStream();
        using var h = Harness(null);
        h.Transport.Respond("a", _ =>
        {
            var response = Sse(body);
            response.Content.Headers.ContentLanguage.Add("en");
            response.Content.Headers.ContentLength = 9;
            return response;
        });

        using var response = await Send(h);

        body.Reads.Should().Be(0, "without a first-byte timeout or latency-aware choice the caller's read is the first");
        response.Content.Headers.ContentType!.MediaType.Should().Be("text/event-stream");
        response.Content.Headers.ContentLanguage.Should().Equal("en");
        response.Content.Headers.ContentLength.Should().Be(9);
        body.Send("data: 1\n\n").End();
        (await response.Content.ReadAsStringAsync()).Should().Be("data: 1\n\n");
    }

    [Fact]
    public async Task A_transport_that_returns_the_same_response_object_again_is_not_wrapped_twice()
    {
        using var h = Harness(null);
        var cached = Sse(new ScriptedBodyStream().Send("data: 1\n\n").End());
        h.Transport.Respond("a", _ => cached);

        var first = (await Send(h)).Content;
        var second = (await Send(h)).Content;

        second.Should().BeSameAs(first, "the answer is watched once, not one wrapper deeper per request");
    }

    [Fact]
    public async Task An_aborted_body_rethrows_the_transports_exception_and_five_in_a_row_eject_the_backend()
    {
        using var h = Harness(o => o.FirstByteTimeout = FirstByteTimeout);
        for (var i = 1; i <= 5; i++)
        {
            var reset = new IOException("connection reset " + i);
            h.Transport.Respond("a", _ => Sse(new ScriptedBodyStream().Send("data: 1\n\n").Fail(reset)));
            using var response = await Send(h);
            var stream = await response.Content.ReadAsStreamAsync();
            (await ReadExactlyAsync(stream, 9)).Should().Be("data: 1\n\n");

            var read = () => stream.ReadAsync(new byte[16]).AsTask();

            (await read.Should().ThrowAsync<IOException>()).Which.Should().BeSameAs(reset, "nothing new is thrown into the caller's read loop");
            h.StateOf("a").Should().Be(
                i < 5 ? null : new BackendUnavailability(h.Time.GetUtcNow() + TimeSpan.FromSeconds(30), BackendUnavailableReason.Ejected),
                "failure {0} of 5", i);
        }
    }

    [Fact]
    public async Task Headers_alone_do_not_end_a_run_of_failures_but_a_body_read_to_its_end_does()
    {
        using var h = Harness(o => o.FirstByteTimeout = FirstByteTimeout);
        await AbortedBodies(h, 4);

        // A 200 whose body is still streaming: its headers and first byte are not yet a healthy verdict.
        var open = new ScriptedBodyStream().Send("data: 1\n\n");
        h.Transport.Respond("a", _ => Sse(open));
        using (var streaming = await Send(h))
        {
            await AbortedBodies(h, 1);
            h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.Ejected);
        }

        using var h2 = Harness(o => o.FirstByteTimeout = FirstByteTimeout);
        await AbortedBodies(h2, 4);
        h2.Transport.Respond("a", _ => Sse(new ScriptedBodyStream().Send("data: 1\n\n").End()));
        using (var complete = await Send(h2))
        {
            (await complete.Content.ReadAsStringAsync()).Should().Be("data: 1\n\n");
        }

        await AbortedBodies(h2, 1);
        h2.StateOf("a").Should().BeNull("the body read to its end ended the run");
    }

    [Fact]
    public async Task Disposing_after_bytes_arrived_is_healthy_and_before_any_byte_says_nothing()
    {
        using var released = Harness(o =>
        {
            o.FirstByteTimeout = FirstByteTimeout;
            o.OutlierEjection.ConsecutiveFailures = 2;
        });
        await AbortedBodies(released, 1);
        released.Transport.Respond("a", _ => Sse(new ScriptedBodyStream().Send("data: 1\n\n")));
        (await Send(released)).Dispose();
        await AbortedBodies(released, 1);
        released.StateOf("a").Should().BeNull("an SDK that stops at [DONE] and disposes leaves a healthy backend");

        using var abandoned = Harness(o =>
        {
            o.StreamStallTimeout = TimeSpan.FromSeconds(5);
            o.OutlierEjection.ConsecutiveFailures = 2;
        });
        await AbortedBodies(abandoned, 1);
        abandoned.Transport.Respond("a", _ => Sse(new ScriptedBodyStream()));
        (await Send(abandoned)).Dispose();
        await AbortedBodies(abandoned, 1);
        abandoned.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.Ejected, "a body disposed unread proves nothing");
    }

    [Fact]
    public async Task A_stall_is_recorded_once_and_the_read_goes_on_untouched()
    {
        using var broken = Collector<long>("priority_routing.streams.broken");
        var body = new ScriptedBodyStream().Send("data: 1\n\n");
        using var h = Harness(o =>
        {
            o.FirstByteTimeout = FirstByteTimeout;
            o.StreamStallTimeout = TimeSpan.FromSeconds(2);
            o.OutlierEjection.ConsecutiveFailures = 1;
        });
        h.Transport.Respond("a", _ => Sse(body));
        using var response = await Send(h);
        var stream = await response.Content.ReadAsStreamAsync();
        await ReadExactlyAsync(stream, 9);
        var buffer = new byte[16];

        var next = stream.ReadAsync(buffer).AsTask();
        await body.WhenReading();
        h.Time.Advance(TimeSpan.FromMilliseconds(1999));
        broken.GetMeasurementSnapshot().Should().BeEmpty();
        h.Time.Advance(TimeSpan.FromMilliseconds(1));

        broken.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"), Tag(m, "reason"))).Should().Equal((1L, "a", "stalled"));
        var ejectedUntil = h.Time.GetUtcNow() + TimeSpan.FromSeconds(30);
        h.StateOf("a").Should().Be(new BackendUnavailability(ejectedUntil, BackendUnavailableReason.Ejected));
        next.IsCompleted.Should().BeFalse("a stall is recorded, never thrown");

        body.Send("data: 2\n\n").End();
        (await next).Should().Be(9);
        (await stream.ReadAsync(buffer)).Should().Be(0);
        h.Time.Advance(TimeSpan.FromSeconds(10));
        broken.GetMeasurementSnapshot().Should().HaveCount(1, "one verdict per body");
        h.StateOf("a").Should().Be(new BackendUnavailability(ejectedUntil, BackendUnavailableReason.Ejected));
    }

    [Fact]
    public async Task Reports_time_to_first_byte_per_backend_and_broken_streams_by_reason()
    {
        using var ttfb = Collector<double>("priority_routing.backend.time_to_first_byte");
        using var broken = Collector<long>("priority_routing.streams.broken");
        using var h = Harness(o => o.FirstByteTimeout = FirstByteTimeout);
        h.Transport.Respond("a", _ =>
        {
            h.Time.Advance(TimeSpan.FromMilliseconds(250));
            return Sse(new ScriptedBodyStream().Send("x").Fail(new HttpIOException(HttpRequestError.ResponseEnded)));
        });

        using var response = await Send(h);
        var read = async () => await response.Content.ReadAsStringAsync();
        await read.Should().ThrowAsync<HttpRequestException>().WithInnerException(typeof(HttpIOException));

        ttfb.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"), Tag(m, "backend.priority"))).Should().Equal((0.25, "a", "1"));
        broken.GetMeasurementSnapshot().Select(m => (m.Value, Tag(m, "backend.name"), Tag(m, "reason"))).Should().Equal((1L, "a", "aborted"));
    }

    [Fact]
    public async Task Without_a_first_byte_timeout_the_callers_first_read_measures_the_time_to_first_byte()
    {
        using var ttfb = Collector<double>("priority_routing.backend.time_to_first_byte");
        var body = new ScriptedBodyStream();
        using var h = Harness(o => o.StreamStallTimeout = TimeSpan.FromSeconds(30));
        h.Transport.Respond("a", _ => Sse(body));

        using var response = await Send(h);
        ttfb.GetMeasurementSnapshot().Should().BeEmpty("the attempt ended at the headers");
        var reading = response.Content.ReadAsStringAsync();
        await body.WhenReading();
        h.Time.Advance(TimeSpan.FromMilliseconds(700));
        body.Send("late").End();

        (await reading).Should().Be("late");
        ttfb.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(0.7);
    }

    private static HttpResponseMessage Sse(ScriptedBodyStream body)
    {
        var content = new StreamContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("text/event-stream");
        return new HttpResponseMessage(HttpStatusCode.OK) { Content = content };
    }

    private static Task<HttpResponseMessage> Send(RoutingHarness h, CancellationToken cancellationToken = default)
        => h.Client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/chat"), HttpCompletionOption.ResponseHeadersRead, cancellationToken);

    private static async Task AbortedBodies(RoutingHarness h, int count)
    {
        for (var i = 0; i < count; i++)
        {
            h.Transport.Respond("a", _ => Sse(new ScriptedBodyStream().Send("data: 1\n\n").Fail(new IOException("reset"))));
            using var response = await Send(h);
            var read = async () => await response.Content.ReadAsStringAsync();

            // HttpContent wraps a failed copy, as it does for the socket transport's content.
            await read.Should().ThrowAsync<HttpRequestException>().WithInnerException(typeof(IOException));
        }
    }

    private static async Task<string> ReadExactlyAsync(Stream stream, int count)
    {
        var buffer = new byte[count];
        await stream.ReadExactlyAsync(buffer);
        return System.Text.Encoding.UTF8.GetString(buffer);
    }

    private static string? Tag<T>(CollectedMeasurement<T> measurement, string name)
        where T : struct
        => measurement.Tags.TryGetValue(name, out var value) ? Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) : null;

    private RoutingHarness Harness(Action<PriorityRoutingStrategyOptions>? configure)
        => new(
            o =>
            {
                o.MeterFactory = _services.GetRequiredService<IMeterFactory>();
                configure?.Invoke(o);
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 2));

    private MetricCollector<T> Collector<T>(string name)
        where T : struct
        => new(_services.GetRequiredService<IMeterFactory>(), PriorityRoutingMetrics.MeterName, name);
}
