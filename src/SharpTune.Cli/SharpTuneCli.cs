using System.CommandLine;
using System.CommandLine.Help;
using SharpTune.Cli.Commands;
using SharpTune.Cli.Infrastructure;
using SharpTune.Workflows;

namespace SharpTune.Cli;

/// <summary>Builds the <c>sharptune</c> command tree and runs it with SharpTune's error conventions.</summary>
public static class SharpTuneCli
{
    public static Command BuildRootCommand()
    {
        // A plain Command named 'sharptune' rather than RootCommand, whose name would follow the assembly's.
        var root = new Command("sharptune",
            "SharpTune: Hugging Face transformers in .NET. Tokenize, run, fine-tune (fully or with LoRA), " +
            "quantize and evaluate models, and classify documents with classic and transformer approaches.");
        root.Options.Add(new HelpOption());
        root.Options.Add(new VersionOption());
        GlobalOptions.AddTo(root);
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(PipelineCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(PredictCommand.Create());
        root.Subcommands.Add(ForwardCommand.Create());
        root.Subcommands.Add(ConvertCommand.Create());
        root.Subcommands.Add(TokenizeCommand.Create());
        root.Subcommands.Add(ChatTemplateCommand.Create());
        root.Subcommands.Add(SftCommand.Create());
        root.Subcommands.Add(DpoCommand.Create());
        root.Subcommands.Add(TokenizerCommand.Create());
        root.Subcommands.Add(ClassifyCommand.Create());
        root.Subcommands.Add(PretrainCommand.Create());
        root.Subcommands.Add(QuantizeCommand.Create());
        root.Subcommands.Add(MergeCommand.Create());
        root.Subcommands.Add(HubCommands.CreateDownload());
        root.Subcommands.Add(HubCommands.CreateCache());
        root.Subcommands.Add(ServeCommand.Create());
        return root;
    }

    /// <summary>Parses and runs; returns 0 on success, 2 for usage errors, 1 for failures.</summary>
    public static int Run(string[] args)
    {
        SharpTuneWorkflows.Register();
        var root = BuildRootCommand();
        var parseResult = root.Parse(args);
        if (parseResult.Errors.Count > 0)
        {
            foreach (var error in parseResult.Errors)
                Console.Error.WriteLine($"error: {error.Message}");
            Console.Error.WriteLine("Run 'sharptune --help' (or '<command> --help') for usage.");
            return ExitCodes.Usage;
        }
        var verbose = parseResult.GetValue(GlobalOptions.Verbose);
        try
        {
            return parseResult.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception exception)
        {
            return CliErrors.Report(exception, verbose);
        }
    }
}
