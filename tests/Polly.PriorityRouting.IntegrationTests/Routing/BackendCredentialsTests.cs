using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.Routing;

/// <summary>A backend's credential is the attempt's only: never handed back to the caller, and fetched inside the attempt.</summary>
public sealed class BackendCredentialsTests : ThreeBackendsTestBase
{
    [Theory]
    [InlineData("api-key")]
    [InlineData("bearer")]
    public async Task The_caller_gets_its_own_request_back_without_the_backend_s_credential(string credential)
    {
        using var provider = Host(o =>
        {
            var a = new PriorityBackend { Name = "a", BaseAddress = A.Address };
            if (credential == "api-key")
            {
                a.Headers["api-key"] = "sekret-api-key-a";
            }

            o.Routing.Backends.Add(a);
        },
        credential == "bearer" ? _ => new ValueTask<string>("sekret-token-a") : null);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        using var request = new HttpRequestMessage(HttpMethod.Get, "http://placeholder/openai/chat");

        using var response = await client.SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        A.Received.Single().Headers.Values.Should().Contain(credential == "api-key" ? "sekret-api-key-a" : "Bearer sekret-token-a");
        response.RequestMessage.Should().BeSameAs(request, "the caller's own request comes back, as with synthetic answers");
        response.RequestMessage!.ToString().Should().NotContain("sekret");
        request.Headers.Contains("api-key").Should().BeFalse();
        request.Headers.Authorization.Should().BeNull();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_hanging_token_source_is_bounded_by_the_attempt_timeout_and_the_request_fails_over(bool observesCancellation)
    {
        using var provider = Host(
            o =>
            {
                o.AttemptTimeout.Timeout = TimeSpan.FromMilliseconds(500);
                o.TotalRequestTimeout.Timeout = TimeSpan.FromSeconds(10);
                o.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = A.Address });
                var b = new PriorityBackend { Name = "b", BaseAddress = B.Address, Priority = 2 };
                b.Headers["api-key"] = "key-b";
                o.Routing.Backends.Add(b);
            },
            tokenSource: observesCancellation
                ? async cancellationToken =>
                {
                    // Hangs until cancelled, as a token source waiting on an unreachable identity endpoint does.
                    await Task.Delay(System.Threading.Timeout.Infinite, cancellationToken);
                    return "never";
                }
                : _ => new ValueTask<string>(new TaskCompletionSource<string>().Task));
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var response = await client.GetAsync("http://placeholder/");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-backend").Should().Equal("b");
        A.Hits.Should().Be(0, "a's token never came: nothing was sent to a");
    }

    private static ServiceProvider Host(Action<PriorityRoutingHandlerOptions> configure, Func<CancellationToken, ValueTask<string>>? tokenSource = null)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        var handler = services.AddHttpClient("aoai").AddPriorityRoutingHandler(configure);
        if (tokenSource is not null)
        {
            handler.AddBearerToken("a", tokenSource);
        }

        return services.BuildServiceProvider();
    }
}
