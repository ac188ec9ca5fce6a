namespace Polly.PriorityRouting.Tests.Models;

public class DeploymentPathTests
{
    private static readonly BackendModelMap Map = BackendModelMap.Create(new Dictionary<string, string>
    {
        ["gpt-4o"] = "gpt-4o-ptu",
        ["gpt 4o"] = "meta/llama 3",
        ["o3"] = "o3",
    })!;

    [Theory]
    [InlineData("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "/openai/deployments/gpt-4o-ptu/chat/completions?api-version=2024-10-21")]
    [InlineData("/openai/deployments/gpt-4o", "/openai/deployments/gpt-4o-ptu")]
    [InlineData("/team-a/OpenAI/Deployments/gpt-4o/embeddings", "/team-a/OpenAI/Deployments/gpt-4o-ptu/embeddings")]
    [InlineData("/openai/deployments/gpt%204o/chat/completions", "/openai/deployments/meta%2Fllama%203/chat/completions")]
    [InlineData("/openai/deployments/o3/chat/completions", "/openai/deployments/o3/chat/completions")]
    [InlineData("/openai/deployments/mistral/chat/completions", "/openai/deployments/mistral/chat/completions")]
    [InlineData("/openai/deployments//chat/completions", "/openai/deployments//chat/completions")]
    [InlineData("/v1/chat/completions?next=/openai/deployments/gpt-4o/", "/v1/chat/completions?next=/openai/deployments/gpt-4o/")]
    [InlineData("/openai/v1/chat/completions", "/openai/v1/chat/completions")]
    public void Rewrites_only_a_mapped_deployment_segment_of_the_path(string pathAndQuery, string expected)
        => DeploymentPath.Rewrite(pathAndQuery, Map).Should().Be(expected);

    [Theory]
    [InlineData("http://placeholder/openai/deployments/gpt-4o/chat/completions?api-version=1", "gpt-4o")]
    [InlineData("http://placeholder/base/openai/deployments/gpt%204o/chat", "gpt 4o")]
    [InlineData("openai/deployments/o3/chat/completions?api-version=1", "o3")]
    [InlineData("/openai/deployments/o3?api-version=1", "o3")]
    public void Reads_the_unescaped_name(string uri, string expected)
    {
        DeploymentPath.TryGetName(new Uri(uri, UriKind.RelativeOrAbsolute), out var name).Should().BeTrue();
        name.Should().Be(expected);
    }

    [Theory]
    [InlineData("http://placeholder/v1/chat/completions")]
    [InlineData("http://placeholder/openai/deployments/")]
    [InlineData("http://placeholder/openai/files?x=/openai/deployments/gpt-4o/")]
    public void Finds_no_name_without_a_deployment_segment(string uri)
        => DeploymentPath.TryGetName(new Uri(uri), out _).Should().BeFalse();
}
