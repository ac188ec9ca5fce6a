using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Polly.PriorityRouting.DocsTests.Support;

/// <summary>
/// Compiles one documentation snippet as a program of its own, the way a reader would paste it into an app.
/// </summary>
/// <remarks>
/// <para>
/// A snippet is compiled as written: its own <c>using</c> lines, then statements (top-level, <c>await</c> allowed) and
/// any types it declares. Besides its own usings it gets only the implicit usings of a console app
/// (<see cref="ImplicitUsings"/>), and it may use, without declaring them, the names of the <see cref="Preamble"/> —
/// what every app has at hand: <c>builder</c> (<c>IHostApplicationBuilder</c>), <c>services</c>
/// (<c>IServiceCollection</c>), <c>configuration</c> (<c>IConfiguration</c>), <c>serviceProvider</c>
/// (<c>IServiceProvider</c>) and <c>logger</c> (<c>ILogger</c>). A snippet may declare a local of the same name.
/// Everything else a snippet uses must be declared in it.
/// </para>
/// <para>
/// References: the framework, ASP.NET Core, and every assembly this test project ships with (the libraries, hosting,
/// the OpenAI and Azure SDKs, Microsoft.Extensions.AI, OpenTelemetry, StackExchange.Redis).
/// </para>
/// </remarks>
public static class SnippetCompiler
{
    /// <summary>The global usings of a console app with <c>ImplicitUsings</c> enabled (Microsoft.NET.Sdk).</summary>
    public const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    /// <summary>The names a snippet may use undeclared, as static members (a local of the same name hides them).</summary>
    public const string Preamble = """
        global using static SnippetPreamble;

        internal static class SnippetPreamble
        {
            public static Microsoft.Extensions.Hosting.IHostApplicationBuilder builder = null!;
            public static Microsoft.Extensions.DependencyInjection.IServiceCollection services = null!;
            public static Microsoft.Extensions.Configuration.IConfiguration configuration = null!;
            public static System.IServiceProvider serviceProvider = null!;
            public static Microsoft.Extensions.Logging.ILogger logger = null!;
        }
        """;

    private static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    private static readonly Lazy<MetadataReference[]> References = new(LoadReferences);

    /// <summary>Compiles <paramref name="code"/> and returns its errors, each as <c>(line,column): CS0000: message</c>.</summary>
    public static IReadOnlyList<string> Errors(string code)
    {
        var snippet = CSharpSyntaxTree.ParseText(code, ParseOptions, path: "snippet.cs");
        var hasStatements = snippet.GetCompilationUnitRoot().Members.OfType<GlobalStatementSyntax>().Any();
        var compilation = CSharpCompilation.Create(
            "Snippet",
            [snippet, CSharpSyntaxTree.ParseText(ImplicitUsings, ParseOptions), CSharpSyntaxTree.ParseText(Preamble, ParseOptions)],
            References.Value,
            new CSharpCompilationOptions(
                hasStatements ? OutputKind.ConsoleApplication : OutputKind.DynamicallyLinkedLibrary,
                nullableContextOptions: NullableContextOptions.Enable));

        return [.. compilation.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error)
            .Select(d => $"{d.Location.GetLineSpan().StartLinePosition.Line + 1},{d.Location.GetLineSpan().StartLinePosition.Character + 1}: {d.Id}: {d.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}")];
    }

    private static MetadataReference[] LoadReferences()
    {
        // The runtime's trusted assemblies (framework, ASP.NET Core, and the packages of this project's deps.json),
        // then anything else next to the tests; one assembly per name.
        var trusted = ((string?)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        var local = Directory.EnumerateFiles(AppContext.BaseDirectory, "*.dll");
        return [.. trusted.Concat(local)
            .Where(IsManagedAssembly)
            .GroupBy(Path.GetFileNameWithoutExtension, StringComparer.OrdinalIgnoreCase)
            .Select(g => MetadataReference.CreateFromFile(g.First()))];
    }

    private static bool IsManagedAssembly(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            using var reader = new PEReader(stream);
            return reader.HasMetadata && reader.GetMetadataReader().IsAssembly;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }
}
