using System.Net;
using System.Net.Http.Json;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.DependencyInjection;

/// <summary>
/// The README's one line, <c>services.AddHttpClient("aoai").AddPriorityRoutingHandler(section)</c>, as written: no
/// BaseAddress anywhere, relative request URIs, against real Kestrel backends.
/// </summary>
public sealed class PriorityRoutingHttpClientBuilderExtensionsTests : ThreeBackendsTestBase
{
    private const string Chat = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21";

    [Fact]
    public async Task The_README_one_liner_sends_a_relative_POST_without_any_BaseAddress()
    {
        A.Throttle(30);
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        var configuration = ReadmeConfiguration();

        services.AddHttpClient("aoai")
            .AddPriorityRoutingHandler(configuration.GetSection("PriorityRouting"));

        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        using var response = await client.PostAsJsonAsync(Chat, new { model = "gpt-4o" });

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Headers.GetValues("x-backend").Should().Equal("b");
        A.Received.Single().Headers["api-key"].Should().Be("key-a");
        var served = B.Received.Single();
        (served.Method, served.Path, served.Query, served.Body).Should().Be(
            ("POST", "/openai/deployments/gpt-4o/chat/completions", "?api-version=2024-10-21", "{\"model\":\"gpt-4o\"}"));
        served.Headers.Should().NotContainKey("api-key");
        client.BaseAddress.Should().Be(new Uri("http://priority-routing.invalid/"), "the handler sets a placeholder no DNS resolves");
    }

    [Fact]
    public async Task An_absolute_request_URI_works_as_before()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(ReadmeConfiguration().GetSection("PriorityRouting"));
        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");

        using var response = await client.GetAsync("https://anything.example/openai/models?x=1");

        response.Headers.GetValues("x-backend").Should().Equal("a");
        (A.Received.Single().Path, A.Received.Single().Query).Should().Be(("/openai/models", "?x=1"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_BaseAddress_of_the_user_wins_whatever_the_registration_order(bool userFirst)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        var section = ReadmeConfiguration().GetSection("PriorityRouting");
        if (userFirst)
        {
            services.AddHttpClient("aoai", c => c.BaseAddress = new Uri("https://gateway.example/api/"))
                .AddPriorityRoutingHandler(section);
        }
        else
        {
            services.AddHttpClient("aoai").AddPriorityRoutingHandler(section);
            services.AddHttpClient("aoai", c => c.BaseAddress = new Uri("https://gateway.example/api/"));
        }

        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        using var response = await client.GetAsync("openai/models");

        client.BaseAddress.Should().Be(new Uri("https://gateway.example/api/"));
        response.Headers.GetValues("x-backend").Should().Equal("a");
        A.Received.Single().Path.Should().Be("/api/openai/models", "the caller's own base path is part of the request path");
    }

    [Fact]
    public async Task A_BaseAddress_set_for_every_client_wins_too()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IBackendStateStore>(new InMemoryBackendStateStore());
        services.AddHttpClient("aoai").AddPriorityRoutingHandler(ReadmeConfiguration().GetSection("PriorityRouting"));
        services.ConfigureHttpClientDefaults(b => b.ConfigureHttpClient(c => c.BaseAddress = new Uri("https://defaults.example/v1/")));

        using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai");
        using var response = await client.GetAsync("models");

        client.BaseAddress.Should().Be(new Uri("https://defaults.example/v1/"));
        A.Received.Single().Path.Should().Be("/v1/models");
    }

    /// <summary>The README's configuration, with the loopback backends' addresses.</summary>
    private IConfiguration ReadmeConfiguration()
    {
        var json = $$"""
            {
              "PriorityRouting": {
                "Routing": {
                  "Backends": [
                    { "Name": "a", "BaseAddress": "{{A.Address}}", "Priority": 1, "Headers": { "api-key": "key-a" } },
                    { "Name": "b", "BaseAddress": "{{B.Address}}", "Priority": 2, "Weight": 2 }
                  ],
                  "DefaultCooldown": "00:00:10"
                },
                "Retry": { "MaxRetryAttempts": 3 },
                "TotalRequestTimeout": { "Timeout": "00:02:00" }
              }
            }
            """;
        return new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();
    }
}
