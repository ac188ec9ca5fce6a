using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Http.Resilience;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

public class RequestBodyTests
{
    [Theory]
    [InlineData("application/json", true)]
    [InlineData("Application/JSON", true)]
    [InlineData("text/json", true)]
    [InlineData("application/merge-patch+json", true)]
    [InlineData(null, true)]
    [InlineData("application/jsonl", false)]
    [InlineData("application/x-ndjson", false)]
    [InlineData("multipart/form-data", false)]
    [InlineData("application/x-www-form-urlencoded", false)]
    [InlineData("text/plain", false)]
    public void One_rule_says_what_is_json_for_the_model_the_cost_and_affinity(string? mediaType, bool json)
    {
        RequestBody.IsJson(mediaType is null ? null : new MediaTypeHeaderValue(mediaType)).Should().Be(json);

        using var request = Post("""{"model":"gpt-4o","prompt":"12345678","previous_response_id":"resp_1"}""", mediaType);
        var facts = RequestBody.Of(request, keepBytes: true)!.Facts;
        (facts.Model, OpenAIRequestCost.Estimate(request), (string?)facts.Referenced.Value).Should().Be(json ? ("gpt-4o", 2L, "resp_1") : (null, 0L, null));
    }

    [Fact]
    public void A_body_over_the_one_cap_is_not_read()
    {
        using var request = Post("""{"model":"gpt-4o","prompt":"12345678"}""");
        request.Content!.Headers.ContentLength = RequestBody.MaxBytes + 1L;

        RequestBody.Of(request)!.Facts.Should().Be(RequestBodyFacts.None);
    }

    [Fact]
    public void The_body_is_read_once_and_left_readable_where_it_was()
    {
        using var request = Post("""{"model":"gpt-4o","prompt":"12345678"}""");
        var stream = request.Content!.ReadAsStream();
        stream.Position = 3;

        var first = RequestBody.Of(request)!;
        var facts = first.Facts;

        RequestBody.Of(request).Should().BeSameAs(first, "an outer retry finds the read of the first execution");
        RequestBody.Of(request)!.Facts.Should().Be(facts);
        stream.Position.Should().Be(3);
    }

    [Fact]
    public void A_json_body_is_read_once_for_its_facts_and_its_bytes()
    {
        var content = new CountingContent("""{"model":"gpt-4o","prompt":"12345678"}""", "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://x/v1/chat/completions") { Content = content };

        // The planner's, not read yet; then a custom RequestCost that calls the default estimate first.
        var body = RequestBody.Of(request, keepBytes: true)!;
        OpenAIRequestCost.Estimate(request).Should().Be(2);
        (body.Facts.Model, body.Facts.EstimatedTokens, Encoding.UTF8.GetString(body.Bytes.Span)).Should().Be(("gpt-4o", 2L, """{"model":"gpt-4o","prompt":"12345678"}"""));
        _ = RequestBody.Of(request)!.Facts;

        content.Reads.Should().Be(1);
    }

    [Fact]
    public void A_body_that_is_not_json_is_not_read_unless_its_bytes_are_asked_for()
    {
        var content = new CountingContent("--boundary\r\n", "multipart/form-data");
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://x/v1/files") { Content = content };

        RequestBody.Of(request).Should().BeNull();
        RequestBody.Of(request, keepBytes: true)!.Facts.Should().Be(RequestBodyFacts.None);
        content.Reads.Should().Be(0, "a model map keeps the bytes of JSON bodies only: an upload is never copied for it");

        RequestBody.Of(request, keepBytes: true)!.Bytes.Length.Should().Be(12, "a custom extractor asking for the body gets it");
        content.Reads.Should().Be(1);
    }

    [Fact]
    public void A_request_given_new_content_is_read_anew()
    {
        using var request = Post("""{"model":"first"}""");
        RequestBody.Of(request, keepBytes: true)!.Facts.Model.Should().Be("first");

        request.Content = new StringContent("""{"model":"second"}""", Encoding.UTF8, "application/json");

        RequestBody.Of(request, keepBytes: true)!.Facts.Model.Should().Be("second");
    }

    [Fact]
    public async Task An_outer_retry_hands_a_custom_extractor_the_same_buffer_and_reads_nothing_again()
    {
        var extractor = new AddressRecordingExtractor();
        using var h = new RoutingHarness(o => o.Affinity.IdExtractor = extractor, RoutingHarness.Backend("a", 1));
        using var invoker = new HttpMessageInvoker(new ResilienceHandler(h.Pipeline) { InnerHandler = h.Transport });
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://placeholder/tickets")
        {
            Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes("""{"ticket":"tk-1"}""")))
            {
                Headers = { ContentType = new MediaTypeHeaderValue("application/json") },
            },
        };

        // The strategy executed twice with the same request, as an outer retry does.
        using (await invoker.SendAsync(request, CancellationToken.None))
        {
        }

        using (await invoker.SendAsync(request, CancellationToken.None))
        {
        }

        extractor.Bodies.Should().Equal("""{"ticket":"tk-1"}""", """{"ticket":"tk-1"}""");
        extractor.Buffers.Should().HaveCount(2).And.OnlyContain(buffer => buffer != null && ReferenceEquals(buffer, extractor.Buffers[0]), "one buffer, read once");
        h.Transport.Hosts.Should().Equal(["a", "a"]);
    }

    /// <summary>
    /// The documented limit of the one read (docs/configuration.md, "The request body"): the body is read once per
    /// content object, so a caller that rewrites a <see cref="ByteArrayContent"/>'s array in place between an outer
    /// retry's attempts is routed — and, with a model map, sent — as first read; new content is read anew.
    /// </summary>
    [Fact]
    public async Task A_byte_array_changed_in_place_between_outer_retries_is_sent_as_first_read_and_new_content_is_read_anew()
    {
        var mapped = RoutingHarness.Backend("a", 1);
        mapped.Models["gpt-4o"] = "dep-a";
        using var h = new RoutingHarness(null, mapped);
        using var invoker = new HttpMessageInvoker(new ResilienceHandler(h.Pipeline) { InnerHandler = h.Transport });
        var bytes = Encoding.UTF8.GetBytes("""{"model":"gpt-4o","input":"hello"}""");
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://placeholder/v1/responses")
        {
            Content = new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        };

        (await invoker.SendAsync(request, CancellationToken.None)).Dispose();
        Encoding.UTF8.GetBytes("HELLO").CopyTo(bytes, bytes.Length - 7);
        (await invoker.SendAsync(request, CancellationToken.None)).Dispose();
        request.Content = new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } };
        (await invoker.SendAsync(request, CancellationToken.None)).Dispose();

        h.Transport.Requests.Select(r => r.Body).Should().Equal(
            """{"model":"dep-a","input":"hello"}""",
            """{"model":"dep-a","input":"hello"}""",
            """{"model":"dep-a","input":"HELLO"}""");
    }

    private static HttpRequestMessage Post(string json, string? mediaType = "application/json")
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(json));
        if (mediaType is not null)
        {
            content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        }

        return new HttpRequestMessage(HttpMethod.Post, "http://x/v1/responses") { Content = content };
    }

    /// <summary>A content that is not buffered: every read of it serializes it again, and is counted.</summary>
    private sealed class CountingContent : HttpContent
    {
        private readonly byte[] _bytes;

        public CountingContent(string text, string mediaType)
        {
            _bytes = Encoding.UTF8.GetBytes(text);
            Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        }

        public int Reads { get; private set; }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            Reads++;
            return stream.WriteAsync(_bytes).AsTask();
        }

        protected override Stream CreateContentReadStream(CancellationToken cancellationToken)
        {
            Reads++;
            return new MemoryStream(_bytes, writable: false);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _bytes.Length;
            return true;
        }
    }

    private sealed class AddressRecordingExtractor : AffinityIdExtractor
    {
        public List<string> Bodies { get; } = [];

        /// <summary>The array under each body handed over, when it is the request's one read of its body.</summary>
        public List<byte[]?> Buffers { get; } = [];

        public override AffinityRequest Extract(HttpRequestMessage request) => new() { ReadsBody = true };

        public override AffinityRequest ExtractFromBody(HttpRequestMessage request, ReadOnlySpan<byte> body, AffinityRequest fromRequest)
        {
            Bodies.Add(Encoding.UTF8.GetString(body));
            var shared = RequestBody.Of(request, keepBytes: true)!.Bytes;
            Buffers.Add(body == shared.Span && MemoryMarshal.TryGetArray(shared, out var segment) ? segment.Array : null);
            return fromRequest;
        }
    }
}
