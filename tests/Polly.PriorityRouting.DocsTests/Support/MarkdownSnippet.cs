namespace Polly.PriorityRouting.DocsTests.Support;

/// <summary>One fenced C# block of a Markdown file: where it starts (1-based line of the fence) and its code.</summary>
public sealed record MarkdownSnippet(string File, int Line, string Code)
{
    /// <summary>Shown as the test case's name: <c>docs/recipes.md:21</c>.</summary>
    public override string ToString() => $"{File}:{Line}";
}
