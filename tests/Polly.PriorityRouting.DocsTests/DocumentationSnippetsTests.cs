using System.Text.RegularExpressions;
using Polly.PriorityRouting.DocsTests.Support;

namespace Polly.PriorityRouting.DocsTests;

/// <summary>
/// Every C# block of the README, docs/*.md and the package READMEs compiles as a reader would paste it (see
/// <see cref="SnippetCompiler"/> for what a snippet may use without declaring it).
/// </summary>
public class DocumentationSnippetsTests
{
    public static TheoryData<string> Snippets() => [.. MarkdownSnippets.All().Select(s => s.ToString())];

    [Theory]
    [MemberData(nameof(Snippets))]
    public void Every_csharp_block_compiles(string location)
    {
        var snippet = MarkdownSnippets.All().Single(s => s.ToString() == location);

        var errors = SnippetCompiler.Errors(snippet.Code);

        errors.Should().BeEmpty(
            "the block at {0} must compile as written (errors at line,column of the block):\n{1}",
            location,
            string.Join("\n", snippet.Code.Split('\n').Select((line, i) => $"{i + 1,3}| {line}")));
    }

    [Fact]
    public void Every_csharp_fence_of_the_documentation_is_found()
    {
        foreach (var file in MarkdownSnippets.Files())
        {
            var fences = Regex.Count(File.ReadAllText(Path.Combine(MarkdownSnippets.RepositoryRoot, file)), @"^\s*```(csharp|cs|c#)\s*$", RegexOptions.Multiline | RegexOptions.IgnoreCase);
            MarkdownSnippets.All().Count(s => s.File == file).Should().Be(fences, "every fence of {0} is compiled", file);
        }

        MarkdownSnippets.Files().Should().Contain(["README.md", "docs/recipes.md", "docs/configuration.md"]);
        MarkdownSnippets.All().Should().Contain(s => s.File == "README.md").And.Contain(s => s.File == "docs/recipes.md");
    }

    [Fact]
    public void A_snippet_missing_a_using_fails_with_the_compiler_error_a_reader_would_get()
    {
        // The README's "in your own pipeline" block as it was, without "using Polly;".
        const string code = """
            using Microsoft.Extensions.DependencyInjection;
            using Microsoft.Extensions.Http.Resilience;

            services.AddHttpClient("aoai")
                .AddResilienceHandler("aoai", b => b.AddRetry(new HttpRetryStrategyOptions()));
            """;

        SnippetCompiler.Errors(code).Should().Equal(
            "5,42: CS1061: 'ResiliencePipelineBuilder<HttpResponseMessage>' does not contain a definition for 'AddRetry' and no accessible extension method 'AddRetry' accepting a first argument of type 'ResiliencePipelineBuilder<HttpResponseMessage>' could be found (are you missing a using directive or an assembly reference?)");
        SnippetCompiler.Errors("using Polly;\n" + code).Should().BeEmpty();
    }

    [Fact]
    public void Only_the_preamble_names_are_declared_for_a_snippet_and_a_local_may_hide_them()
    {
        SnippetCompiler.Errors("""
            using Microsoft.Extensions.DependencyInjection;

            builder.Services.AddHttpClient("a");
            services.AddHttpClient("b");
            _ = configuration["x"];
            _ = serviceProvider.GetService<IHttpClientFactory>();
            logger.GetHashCode();
            var services2 = new ServiceCollection();
            """).Should().BeEmpty();
        SnippetCompiler.Errors("""
            using Microsoft.Extensions.DependencyInjection;

            var services = new ServiceCollection();
            services.AddHttpClient("a");
            """).Should().BeEmpty();
        SnippetCompiler.Errors("options.ToString();").Should().Equal(
            "1,1: CS0103: The name 'options' does not exist in the current context");
    }

    [Fact]
    public void A_snippet_of_types_only_compiles_as_a_library()
    {
        SnippetCompiler.Errors("""
            using Polly.PriorityRouting;

            public sealed class NoStore : IBackendStateStore
            {
                public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability)
                {
                    unavailability = default;
                    return false;
                }

                public ValueTask MarkUnavailableAsync(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now, CancellationToken cancellationToken)
                    => default;

                public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend) => [];
            }
            """).Should().BeEmpty();
    }
}
