using Polly.PriorityRouting.DocsTests.Support;

namespace Polly.PriorityRouting.DocsTests;

public class MarkdownSnippetsTests
{
    [Fact]
    public void Takes_csharp_cs_and_csharp_sign_fences_with_their_first_line_and_nothing_else()
    {
        const string markdown = """
            # Title

            ```csharp
            var a = 1;
            ```

            ```json
            { "a": 1 }
            ```

            ```CS
            var b = 2;
            var c = 3;
            ```

            ~~~c#
            var d = 4;
            ~~~

            ```bash
            dotnet test
            ```
            """;

        MarkdownSnippets.Parse("x.md", markdown).Should().Equal(
            new MarkdownSnippet("x.md", 3, "var a = 1;"),
            new MarkdownSnippet("x.md", 11, "var b = 2;\nvar c = 3;"),
            new MarkdownSnippet("x.md", 16, "var d = 4;"));
    }

    [Fact]
    public void A_fence_in_a_list_loses_its_indentation()
    {
        const string markdown = "1. Do this:\n\n   ```csharp\n   if (true)\n   {\n       Go();\n   }\n   ```\n";

        MarkdownSnippets.Parse("x.md", markdown).Should().Equal(
            new MarkdownSnippet("x.md", 3, "if (true)\n{\n    Go();\n}"));
    }

    [Fact]
    public void A_csharp_fence_quoted_inside_another_fence_is_not_a_block()
    {
        const string markdown = "````markdown\n```csharp\nnot code\n```\n````\n";

        MarkdownSnippets.Parse("x.md", markdown).Should().BeEmpty();
    }

    [Fact]
    public void An_unclosed_fence_runs_to_the_end()
    {
        MarkdownSnippets.Parse("x.md", "```csharp\nvar a = 1;\n").Should().Equal(new MarkdownSnippet("x.md", 1, "var a = 1;\n"));
    }
}
