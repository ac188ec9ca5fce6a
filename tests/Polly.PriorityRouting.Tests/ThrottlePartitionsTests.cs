namespace Polly.PriorityRouting.Tests;

public class ThrottlePartitionsTests
{
    [Theory]
    [InlineData("https://aoai.example.net/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "gpt-4o")]
    [InlineData("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "gpt-4o")]
    [InlineData("openai/deployments/gpt%2D4o/embeddings", "gpt-4o")]
    [InlineData("https://aoai.example.net/openai/deployments/gpt-4o?api-version=2024-10-21", "gpt-4o")]
    [InlineData("/openai/deployments/gpt-4o?api-version=2024-10-21", "gpt-4o")]
    [InlineData("/openai/deployments/gpt-4o#section", "gpt-4o")]
    [InlineData("/openai/v1/chat/completions", null)]
    [InlineData("/openai/deployments/", null)]
    [InlineData("/openai/deployments/?api-version=1", null)]
    public void The_deployment_name_is_the_path_segment_whatever_the_uri_kind(string uri, string? expected)
    {
        // A relative URI keeps its query in OriginalString: it must not become part of the partition (one deployment
        // would be throttled under as many partitions as callers' query strings).
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(uri, UriKind.RelativeOrAbsolute));

        ThrottlePartitions.AzureOpenAIDeployment(request).Should().Be(expected);
    }
}
