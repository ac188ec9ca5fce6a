using System.Net;

namespace Polly.PriorityRouting.Tests.Routing;

public class AttemptRequestTests
{
    [Theory]
    [InlineData("https://apim.example.net/team-a/", "http://placeholder/openai/chat?api-version=1", "https://apim.example.net/team-a/openai/chat?api-version=1")]
    [InlineData("https://apim.example.net/team-a", "http://placeholder/openai/chat", "https://apim.example.net/team-a/openai/chat")]
    [InlineData("https://east.example.com/", "http://placeholder/", "https://east.example.com/")]
    [InlineData("http://127.0.0.1:5001/", "http://placeholder:9999/v1/x?a=1&b=%20c", "http://127.0.0.1:5001/v1/x?a=1&b=%20c")]
    [InlineData("http://[::1]:8080/base/", "http://placeholder/x", "http://[::1]:8080/base/x")]
    [InlineData("https://host/p/?api-version=2024", "http://placeholder/chat?stream=true", "https://host/p/chat?api-version=2024&stream=true")]
    [InlineData("https://host/?code=secret", "http://placeholder/chat", "https://host/chat?code=secret")]
    [InlineData("https://host/a%20b/", "http://placeholder/c%2Fd", "https://host/a%20b/c%2Fd")]
    public void Applies_scheme_host_port_and_base_path_once(string baseAddress, string request, string expected)
    {
        var backend = Backend(baseAddress);

        AttemptRequest.BuildUri(new Uri(request), backend).AbsoluteUri.Should().Be(expected);
    }

    [Fact]
    public void Base_path_is_applied_to_the_original_on_every_attempt()
    {
        var original = new HttpRequestMessage(HttpMethod.Get, "http://placeholder/openai/x?q=1");
        var a = Backend("https://a.example/ai/");
        var b = Backend("https://b.example/ai/");

        var first = AttemptRequest.Create(original, a);
        var second = AttemptRequest.Create(original, b);
        var third = AttemptRequest.Create(original, a);

        first.RequestUri!.AbsoluteUri.Should().Be("https://a.example/ai/openai/x?q=1");
        second.RequestUri!.AbsoluteUri.Should().Be("https://b.example/ai/openai/x?q=1");
        third.RequestUri!.AbsoluteUri.Should().Be("https://a.example/ai/openai/x?q=1");
        original.RequestUri!.AbsoluteUri.Should().Be("http://placeholder/openai/x?q=1");
    }

    [Fact]
    public void Relative_or_missing_request_uris_map_onto_the_backend()
    {
        var backend = Backend("https://a.example/base/");

        AttemptRequest.BuildUri(new Uri("v1/x?y=1", UriKind.Relative), backend).AbsoluteUri.Should().Be("https://a.example/base/v1/x?y=1");
        AttemptRequest.BuildUri(null, backend).AbsoluteUri.Should().Be("https://a.example/base/");
    }

    [Fact]
    public async Task Copies_method_version_headers_content_and_options_and_sets_backend_headers_only()
    {
        using var content = new StringContent("{}");
        var original = new HttpRequestMessage(HttpMethod.Post, "http://placeholder/x")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
            Content = content,
        };
        original.Headers.TryAddWithoutValidation("x-request-id", "42");
        original.Headers.TryAddWithoutValidation("api-key", "caller-key");
        original.Headers.Host = "placeholder";
        original.Options.Set(new HttpRequestOptionsKey<string>("k"), "v");

        var withKey = Backend("https://a.example/", ("api-key", "key-a"));
        var withoutKey = Backend("https://b.example/");

        var a = AttemptRequest.Create(original, withKey);
        await withKey.Credentials!.ApplyToAsync(a, CancellationToken.None);
        var b = AttemptRequest.Create(original, withoutKey);
        withoutKey.Credentials.Should().BeNull();

        a.Method.Should().Be(HttpMethod.Post);
        a.Version.Should().Be(HttpVersion.Version20);
        a.VersionPolicy.Should().Be(HttpVersionPolicy.RequestVersionOrHigher);
        a.Content.Should().BeSameAs(content);
        a.Headers.GetValues("api-key").Should().Equal("key-a");
        a.Headers.GetValues("x-request-id").Should().Equal("42");
        a.Headers.Host.Should().BeNull();
        a.Options.TryGetValue(new HttpRequestOptionsKey<string>("k"), out var option).Should().BeTrue();
        option.Should().Be("v");

        b.Headers.GetValues("api-key").Should().Equal("caller-key");
        original.Headers.GetValues("api-key").Should().Equal("caller-key");
    }

    [Fact]
    public async Task Stream_content_becomes_replayable()
    {
        var payload = "{\"messages\":[\"hello\"]}"u8.ToArray();
        var original = new HttpRequestMessage(HttpMethod.Post, "http://placeholder/x")
        {
            Content = new StreamContent(new NonSeekableStream(payload)),
        };

        await AttemptRequest.PrepareContentAsync(original, default);

        (await original.Content.ReadAsByteArrayAsync()).Should().Equal(payload);
        (await original.Content.ReadAsByteArrayAsync()).Should().Equal(payload);
    }

    private static RoutedBackend Backend(string address, params (string Name, string Value)[] headers)
    {
        var backend = new PriorityBackend { BaseAddress = new Uri(address) };
        foreach (var (name, value) in headers)
        {
            backend.Headers[name] = value;
        }

        return new RoutedBackend(backend, 0);
    }

    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
