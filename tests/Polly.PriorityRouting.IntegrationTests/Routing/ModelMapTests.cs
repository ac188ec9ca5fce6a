using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Http.Resilience;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.Routing;

/// <summary>Per-backend model names over real Kestrel backends that check what they receive.</summary>
public sealed class ModelMapTests : ThreeBackendsTestBase
{
    [Fact]
    public async Task A_large_streamed_upload_arrives_byte_for_byte_with_only_its_model_replaced_on_each_backend()
    {
        A.Throttle(retryAfterSeconds: 30);
        B.Behave((context, _) => FakeBackend.Status(context, 200, ("x-content-length", context.Request.ContentLength?.ToString(CultureInfo.InvariantCulture) ?? "none")));
        using var host = new ClientHost(Route((A, 1, "gpt-4o-ptu"), (B, 2, "gpt-4o-2024-11-20")));
        var body = LargeBody(400 * 1024, "gpt-4o");
        using var content = new StreamContent(new NonSeekableStream(Encoding.UTF8.GetBytes(body)));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        using var response = await host.Client.PostAsync("/openai/v1/chat/completions", content);

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        var atA = LargeBody(400 * 1024, "gpt-4o-ptu");
        var atB = LargeBody(400 * 1024, "gpt-4o-2024-11-20");
        A.Received.Single().Body.Should().Be(atA);
        B.Received.Single().Body.Should().Be(atB);
        A.Received.Single().Headers["Content-Type"].Should().Be("application/json");
        response.Headers.GetValues("x-content-length").Should().Equal(Encoding.UTF8.GetByteCount(atB).ToString(CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task An_outer_retry_rewrites_again_from_the_callers_unchanged_body()
    {
        A.Behave((context, hit) => hit == 1
            ? FakeBackend.Status(context, 429, ("retry-after-ms", "50"))
            : FakeBackend.Ok(context, hit));
        using var host = new ClientHost(
            Route((A, 1, "gpt-4o-ptu")),
            outer: b => b.AddRetry(new HttpRetryStrategyOptions { ShouldRetryAfterHeader = true, MaxRetryAttempts = 1 }));

        using var response = await host.Client.PostAsync("/v1/chat/completions", new StringContent("{\"model\":\"gpt-4o\",\"n\":1}", Encoding.UTF8, "application/json"));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        A.Received.Select(r => r.Body).Should().Equal("{\"model\":\"gpt-4o-ptu\",\"n\":1}", "{\"model\":\"gpt-4o-ptu\",\"n\":1}");
    }

    [Fact]
    public async Task The_base_path_and_the_mapped_deployment_are_each_applied_once_and_the_query_kept()
    {
        var options = Route((B, 2, "gpt-4o"));
        options.Backends.Insert(0, new PriorityBackend
        {
            Name = "apim",
            BaseAddress = new Uri(A.Address, "team-a/?subscription=s1"),
            Priority = 1,
            Models = { ["gpt-4o"] = "gpt-4o-ptu" },
        });
        A.Behave((context, _) => FakeBackend.Status(context, 503));
        using var host = new ClientHost(options);

        using var response = await host.Client.PostAsync("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", new StringContent("{}"));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        (A.Received.Single().Path, A.Received.Single().Query).Should().Be(("/team-a/openai/deployments/gpt-4o-ptu/chat/completions", "?subscription=s1&api-version=2024-10-21"));
        (B.Received.Single().Path, B.Received.Single().Query).Should().Be(("/openai/deployments/gpt-4o/chat/completions", "?api-version=2024-10-21"));
    }

    private static PriorityRoutingStrategyOptions Route(params (FakeBackend Backend, int Priority, string Gpt4o)[] backends) => new()
    {
        Backends = [.. backends.Select(b => new PriorityBackend
        {
            Name = b.Backend.Name,
            BaseAddress = b.Backend.Address,
            Priority = b.Priority,
            Models = { ["gpt-4o"] = b.Gpt4o },
        })],
    };

    /// <summary>
    /// A chat body of about <paramref name="size"/> bytes whose top-level model comes last, after a nested "model" that is
    /// the request's own data and must stay as it is.
    /// </summary>
    private static string LargeBody(int size, string model)
    {
        var filler = new string('x', size - 200);
        return "{\"messages\":[{\"role\":\"user\",\"content\":\"" + filler + "\"}],\"temperature\":1.0E+0,\"seed\":12345678901234567890," +
               "\"extra\":{\"nested\":{\"model\":\"gpt-4o\"}},\"s\":\"\\u00e9\",\"model\":\"" + model + "\"}";
    }

    /// <summary>An upload that can be read once, forward only, as a network stream.</summary>
    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override long Seek(long offset, SeekOrigin loc) => throw new NotSupportedException();
    }
}
