namespace SharpTune.Cli.Infrastructure;

/// <summary>Turns exceptions into one-line messages and exit codes; stack traces only with -v.</summary>
public static class CliErrors
{
    public static int Report(Exception exception, bool verbose)
    {
        var root = exception is AggregateException { InnerExceptions.Count: 1 } aggregate ? aggregate.InnerException! : exception;
        var code = root switch
        {
            UsageException or FileNotFoundException or DirectoryNotFoundException or ArgumentException or Hub.HubNotFoundException => ExitCodes.Usage,
            _ => ExitCodes.Failure,
        };
        Console.Error.WriteLine($"error: {OneLine(root)}");
        if (verbose)
            Console.Error.WriteLine(root.ToString());
        return code;
    }

    private static string OneLine(Exception exception)
    {
        var message = exception switch
        {
            FileNotFoundException { FileName: { } file } when !exception.Message.Contains(file, StringComparison.Ordinal) => $"{exception.Message} ({file})",
            _ => exception.Message,
        };
        return message.ReplaceLineEndings(" ").Trim();
    }
}
