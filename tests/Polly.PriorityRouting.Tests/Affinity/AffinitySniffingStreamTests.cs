using System.Net.Http.Headers;
using System.Text;

namespace Polly.PriorityRouting.Tests.Affinity;

public class AffinitySniffingStreamTests
{
    [Fact]
    public async Task The_body_passes_through_untouched_and_the_id_is_pinned_before_the_bytes_that_carry_it_are_handed_on()
    {
        var body = Encoding.UTF8.GetBytes("""{"id":"resp_abc","object":"response","output_text":"hello"}""");
        var pinned = new List<(string Id, int BytesHandedOnBefore)>();
        var handedOn = 0;
        await using var stream = new AffinitySniffingStream(new ChunkedStream(body, 3), eventStream: false, (id, _) =>
        {
            pinned.Add((id, handedOn));
            return default;
        });

        var copy = new MemoryStream();
        var buffer = new byte[16];
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            copy.Write(buffer, 0, read);
            handedOn += read;
        }

        copy.ToArray().Should().Equal(body);
        pinned.Should().Equal([("resp_abc", 15)], "the id ends in the sixth chunk of 3 bytes: it is pinned before that chunk is handed on");
    }

    [Fact]
    public async Task A_stream_is_read_live_the_id_comes_from_the_first_event_before_the_stream_ends()
    {
        var first = Encoding.UTF8.GetBytes("event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_live\"}}\n\n");
        var source = new GatedStream(first);
        string? pinned = null;
        await using var stream = new AffinitySniffingStream(source, eventStream: true, (id, _) =>
        {
            pinned = id;
            return default;
        });

        var buffer = new byte[1024];
        var read = await stream.ReadAsync(buffer);

        read.Should().Be(first.Length);
        pinned.Should().Be("resp_live", "the rest of the stream has not even been produced yet");
        source.Finish();
        (await stream.ReadAsync(buffer)).Should().Be(0);
    }

    [Fact]
    public async Task A_reader_that_waits_with_zero_byte_reads_still_gets_the_id_pinned()
    {
        // PipeReader with useZeroByteReads (Kestrel, System.IO.Pipelines consumers) asks "is there data?" with an empty
        // buffer before every real read: that read returns 0 without the body being over.
        var body = Encoding.UTF8.GetBytes("""{"id":"resp_zero","object":"response","output_text":"hello"}""");
        string? pinned = null;
        await using var stream = new AffinitySniffingStream(new ChunkedStream(body, 7), eventStream: false, (id, _) =>
        {
            pinned = id;
            return default;
        });
        var reader = System.IO.Pipelines.PipeReader.Create(stream, new System.IO.Pipelines.StreamPipeReaderOptions(useZeroByteReads: true, leaveOpen: true));

        var copy = new MemoryStream();
        while (true)
        {
            var result = await reader.ReadAsync();
            foreach (var segment in result.Buffer)
            {
                copy.Write(segment.Span);
            }

            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        await reader.CompleteAsync();
        copy.ToArray().Should().Equal(body);
        pinned.Should().Be("resp_zero");
    }

    [Fact]
    public void A_synchronous_zero_byte_read_does_not_end_the_look_ahead()
    {
        var body = Encoding.UTF8.GetBytes("""{"id":"file-zero","object":"file"}""");
        string? pinned = null;
        using var stream = new AffinitySniffingStream(new MemoryStream(body), eventStream: false, (id, _) =>
        {
            pinned = id;
            return default;
        });

        stream.Read(Span<byte>.Empty).Should().Be(0);
        using var reader = new StreamReader(stream);
        reader.ReadToEnd().Should().Be("""{"id":"file-zero","object":"file"}""");
        pinned.Should().Be("file-zero");
    }

    [Fact]
    public void A_synchronous_reader_gets_the_same()
    {
        var body = Encoding.UTF8.GetBytes("""{"id":"file-1","object":"file"}""");
        string? pinned = null;
        using var stream = new AffinitySniffingStream(new MemoryStream(body), eventStream: false, (id, _) =>
        {
            pinned = id;
            return default;
        });

        using var reader = new StreamReader(stream);
        reader.ReadToEnd().Should().Be("""{"id":"file-1","object":"file"}""");
        pinned.Should().Be("file-1");
    }

    [Fact]
    public async Task Looks_at_most_4_KB_and_pins_nothing_beyond()
    {
        var body = Encoding.UTF8.GetBytes("{\"padding\":\"" + new string('x', 5000) + "\",\"id\":\"resp_late\"}");
        var pins = 0;
        await using var stream = new AffinitySniffingStream(new MemoryStream(body), eventStream: false, (_, _) =>
        {
            pins++;
            return default;
        });

        var copy = new MemoryStream();
        await stream.CopyToAsync(copy);

        copy.ToArray().Should().Equal(body);
        pins.Should().Be(0);
    }

    [Fact]
    public async Task The_content_wrapper_keeps_headers_and_is_not_buffered()
    {
        using var inner = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes("""{"id":"batch_1"}""")));
        inner.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        string? pinned = null;
        using var content = new AffinitySniffingContent(inner, (id, _) =>
        {
            pinned = id;
            return default;
        });

        content.Headers.ContentType!.MediaType.Should().Be("application/json");
        (await content.ReadAsStringAsync()).Should().Be("""{"id":"batch_1"}""");
        pinned.Should().Be("batch_1");
    }

    [Fact]
    public async Task Sniffing_a_response_adds_a_constant_allocation_whatever_its_size()
    {
        static async Task<long> AllocatedFor(int size, bool sniffed)
        {
            var body = Encoding.UTF8.GetBytes("{\"id\":\"resp_1\",\"text\":\"" + new string('x', size) + "\"}");
            var buffer = new byte[8192];
            var source = new MemoryStream(body);
            var before = GC.GetAllocatedBytesForCurrentThread();
            Stream stream = sniffed ? new AffinitySniffingStream(source, eventStream: false, static (_, _) => default) : source;
            await using (stream)
            {
                while (await stream.ReadAsync(buffer) > 0)
                {
                }
            }

            return GC.GetAllocatedBytesForCurrentThread() - before;
        }

        // Warm up both paths (JIT tiering, the pool's per-thread cache).
        foreach (var sniffed in new[] { false, true })
        {
            await AllocatedFor(1_000, sniffed);
            await AllocatedFor(1_000_000, sniffed);
        }

        var small = await FewestAsync(() => AllocatedFor(1_000, sniffed: true)) - await FewestAsync(() => AllocatedFor(1_000, sniffed: false));
        var large = await FewestAsync(() => AllocatedFor(1_000_000, sniffed: true)) - await FewestAsync(() => AllocatedFor(1_000_000, sniffed: false));

        large.Should().Be(small);
    }

    [Fact]
    public async Task A_nested_create_pins_both_ids_each_before_the_bytes_that_carry_it_are_handed_on()
    {
        var body = Encoding.UTF8.GetBytes("""{"id":"run_1","object":"thread.run","thread_id":"thread_9","status":"queued"}""");
        var pinned = new List<(string Id, int BytesHandedOnBefore)>();
        var handedOn = 0;
        await using var stream = new AffinitySniffingStream(new ChunkedStream(body, 10), eventStream: false, new AffinityAnswerIds("id", "thread_id"), (id, _) =>
        {
            pinned.Add((id, handedOn));
            return default;
        });

        await CopyCountingAsync(stream, body.Length, n => handedOn += n);

        pinned.Should().Equal([("run_1", 10), ("thread_9", 50)], "each id's closing quote is in the read after the last one handed on before its pin");
    }

    [Fact]
    public async Task Reasoning_items_are_pinned_past_the_first_4_KB_and_in_later_events_before_their_bytes_are_handed_on()
    {
        var head = "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"instructions\":\"" + new string('x', 5000) + "\"}}\n\n";
        var item = "data: {\"type\":\"response.output_item.added\",\"item\":{\"id\":\"rs_1\",\"type\":\"reasoning\"}}\n\n";
        var body = Encoding.UTF8.GetBytes(head + item + item.Replace("added", "done", StringComparison.Ordinal));
        var pinned = new List<(string Id, int BytesHandedOnBefore)>();
        var handedOn = 0;
        await using var stream = new AffinitySniffingStream(new ChunkedStream(body, 1000), eventStream: true, new AffinityAnswerIds("id", ReasoningItems: true), (id, _) =>
        {
            pinned.Add((id, handedOn));
            return default;
        });

        await CopyCountingAsync(stream, body.Length, n => handedOn += n);

        pinned.Should().Equal([("resp_1", 0), ("rs_1", 5000)], "rs_1 ends in the sixth read of 1000 bytes, and is pinned once");
    }

    [Fact]
    public async Task Sniffing_reasoning_items_adds_a_constant_allocation_whatever_the_size()
    {
        static async Task<long> AllocatedFor(int items)
        {
            var body = new StringBuilder("{\"id\":\"resp_1\",\"output\":[");
            for (var i = 0; i < items; i++)
            {
                body.Append("{\"type\":\"message\",\"id\":\"msg_1\",\"text\":\"").Append('x', 1000).Append("\"},");
            }

            var source = new MemoryStream(Encoding.UTF8.GetBytes(body.Append("{}]}").ToString()));
            var buffer = new byte[8192];
            var before = GC.GetAllocatedBytesForCurrentThread();
            await using (var stream = new AffinitySniffingStream(source, eventStream: false, new AffinityAnswerIds("id", ReasoningItems: true), static (_, _) => default))
            {
                while (await stream.ReadAsync(buffer) > 0)
                {
                }
            }

            return GC.GetAllocatedBytesForCurrentThread() - before;
        }

        await AllocatedFor(10);
        await AllocatedFor(1000);

        (await FewestAsync(() => AllocatedFor(1000))).Should().Be(await FewestAsync(() => AllocatedFor(10)));
    }

    /// <summary>
    /// The fewest bytes of three runs: a gen-2 collection from a test running in parallel may trim the array pool's
    /// per-thread cache, and the next rent then allocates — never the other way round.
    /// </summary>
    private static async Task<long> FewestAsync(Func<Task<long>> allocated)
    {
        var fewest = long.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            fewest = Math.Min(fewest, await allocated());
        }

        return fewest;
    }

    private static async Task CopyCountingAsync(Stream stream, int expected, Action<int> handedOn)
    {
        var buffer = new byte[4096];
        var total = 0;
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            total += read;
            handedOn(read);
        }

        total.Should().Be(expected);
    }

    /// <summary>Hands out its bytes a few at a time.</summary>
    private sealed class ChunkedStream(byte[] bytes, int chunk) : MemoryStream(bytes)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            => base.ReadAsync(buffer[..Math.Min(chunk, buffer.Length)], cancellationToken);
    }

    /// <summary>Hands out its first bytes, then waits until <see cref="Finish"/>.</summary>
    private sealed class GatedStream(byte[] first) : MemoryStream(first)
    {
        private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Finish() => _finished.SetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await base.ReadAsync(buffer, cancellationToken);
            if (read == 0)
            {
                await _finished.Task;
            }

            return read;
        }
    }
}
